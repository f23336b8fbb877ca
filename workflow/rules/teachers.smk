# The checkpoint sits outside the declared output: Snakemake deletes the outputs of a killed
# job, and the rerun must find the checkpoint to resume from it.
rule finetune_teacher:
    input:
        train="results/tasks/{task}/train.jsonl",
        labels="results/tasks/{task}/labels.json",
    output:
        directory("results/teachers/{teacher}/{task}/model"),
    log:
        "results/logs/finetune_teacher/{teacher}/{task}.log",
    conda:
        "../../envs/medistill.yaml"
    threads: rule_threads("gpu_rules")
    resources:
        **rule_resources("gpu_rules"),
    params:
        checkpoint="results/checkpoints/teachers/{teacher}/{task}.pt",
    script:
        "../scripts/finetune_teacher.py"
