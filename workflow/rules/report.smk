REPORT_SVGS = [
    "pareto_f1_params",
    "pareto_f1_latency",
    "pareto_typo_params",
    "robustness",
    "training_curves",
]


# Outputs marked report() make up `snakemake --report report.zip` (captions in workflow/report).
rule report:
    input:
        evals=PLAN.evaluation_files,
        # their saved loss histories make the training-curve plot
        models=PLAN.trained_models(),
    output:
        csv=report(
            "results/report/tradeoff.csv",
            caption="../report/tradeoff.rst",
            category="Trade-off",
        ),
        pareto=report(
            "results/report/pareto_f1_params.png",
            caption="../report/pareto_f1_params.rst",
            category="Pareto fronts",
            labels={"figure": "F1 vs parameters"},
        ),
        pareto_latency=report(
            "results/report/pareto_f1_latency.png",
            caption="../report/pareto_f1_latency.rst",
            category="Pareto fronts",
            labels={"figure": "F1 vs CPU latency"},
        ),
        pareto_typo=report(
            "results/report/pareto_typo_params.png",
            caption="../report/pareto_typo_params.rst",
            category="Pareto fronts",
            labels={"figure": "robust F1 vs parameters"},
        ),
        robustness=report(
            "results/report/robustness.png",
            caption="../report/robustness.rst",
            category="Robustness",
        ),
        curves=report(
            "results/report/training_curves.png",
            caption="../report/training_curves.rst",
            category="Training",
        ),
        html=report(
            "results/report/report.html",
            caption="../report/report_html.rst",
            category="Report",
        ),
        svg=expand("results/report/{name}.svg", name=REPORT_SVGS),
    log:
        "results/logs/report.log",
    conda:
        "../../envs/medistill.yaml"
    threads: PLAN.rule_threads("cpu_rules")
    resources:
        **PLAN.rule_resources("cpu_rules"),
    params:
        settings=PLAN.report_settings,
    script:
        "../scripts/report.py"
