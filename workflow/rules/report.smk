rule report:
    input:
        evaluation_files,
    output:
        csv="results/report/tradeoff.csv",
        pareto="results/report/pareto_f1_params.png",
    log:
        "results/logs/report.log",
    conda:
        "../../envs/medistill.yaml"
    script:
        "../scripts/report.py"
