rule prepare_task:
    output:
        train="results/tasks/{task}/train.jsonl",
        dev="results/tasks/{task}/dev.jsonl",
        test="results/tasks/{task}/test.jsonl",
        test_typo5="results/tasks/{task}/test_typo5.jsonl",
        labels="results/tasks/{task}/labels.json",
    log:
        "results/logs/prepare_task/{task}.log",
    conda:
        "../../envs/medistill.yaml"
    params:
        spec=lambda wildcards: config["tasks"][wildcards.task],
    script:
        "../scripts/prepare_task.py"
