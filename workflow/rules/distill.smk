rule distill_student:
    input:
        teacher=teacher_model,
        docs="results/corpus/{corpus}/augmented.jsonl",
        cache="results/cache/{teacher}/{corpus}/manifest.json",
    output:
        directory("results/students/{teacher}/{corpus}/{size}/model"),
    log:
        "results/logs/distill_student/{teacher}/{corpus}/{size}.log",
    conda:
        "../../envs/medistill.yaml"
    threads: rule_threads("gpu_rules")
    resources:
        **rule_resources("gpu_rules"),
    params:
        checkpoint="results/checkpoints/students/{teacher}/{corpus}/{size}.pt",
    script:
        "../scripts/distill_student.py"
