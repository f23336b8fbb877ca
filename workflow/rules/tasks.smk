rule prepare_task:
    input:
        external_task_files,
    output:
        train="results/tasks/{task}/train.jsonl",
        dev="results/tasks/{task}/dev.jsonl",
        test="results/tasks/{task}/test.jsonl",
        test_typo5="results/tasks/{task}/test_typo5.jsonl",
        test_typo15="results/tasks/{task}/test_typo15.jsonl",
        test_abbrev="results/tasks/{task}/test_abbrev.jsonl",
        test_unseen="results/tasks/{task}/test_unseen.jsonl",
        labels="results/tasks/{task}/labels.json",
    log:
        "results/logs/prepare_task/{task}.log",
    conda:
        "../../envs/medistill.yaml"
    threads: rule_threads("cpu_rules")
    resources:
        **rule_resources("cpu_rules"),
    params:
        spec=lambda wildcards: config["tasks"][wildcards.task],
        settings=config_slice("max_words_per_sentence", "seed"),
    script:
        "../scripts/prepare_task.py"
