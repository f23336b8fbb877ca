rule prepare_task:
    input:
        PLAN.external_task_files,
    output:
        # the robustness sets: one file per name of medistill.data.tasks.ROBUSTNESS_SETS
        **{
            f"test_{name}": f"results/tasks/{{task}}/test_{name}.jsonl"
            for name in ROBUSTNESS_SETS
        },
        train="results/tasks/{task}/train.jsonl",
        dev="results/tasks/{task}/dev.jsonl",
        test="results/tasks/{task}/test.jsonl",
        labels="results/tasks/{task}/labels.json",
    log:
        "results/logs/prepare_task/{task}.log",
    conda:
        "../../envs/medistill.yaml"
    threads: PLAN.rule_threads("cpu_rules")
    resources:
        **PLAN.rule_resources("cpu_rules"),
    params:
        spec=PLAN.task_spec,
        settings=settings("max_words_per_sentence", "seed"),
    script:
        "../scripts/prepare_task.py"
