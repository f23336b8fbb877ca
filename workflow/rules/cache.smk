# Shards are written next to the manifest but not declared: a killed job keeps the shards it
# finished, and the rerun only computes the missing ones.
rule cache_teacher_logits:
    input:
        unpack(PLAN.averaged_seed_runs),
        teacher=PLAN.teacher_model,
        sentences="results/corpus/{corpus}/augmented.jsonl",
    output:
        "results/cache/{teacher}/{corpus}/task/{task}/manifest.json",
    log:
        "results/logs/cache_teacher_logits/{teacher}/{corpus}/{task}.log",
    wildcard_constraints:
        teacher=PLAN.encoder_teachers,
    conda:
        "../../envs/medistill.yaml"
    threads: PLAN.rule_threads("gpu_rules")
    resources:
        **PLAN.rule_resources("gpu_rules"),
    params:
        settings=PLAN.cache_settings,
    script:
        "../scripts/cache_teacher_logits.py"


# The same over the task's gold train split, which distillation mixes in (`distill.gold_ratio`).
rule cache_train_logits:
    input:
        unpack(PLAN.averaged_seed_runs),
        teacher=PLAN.teacher_model,
        sentences="results/tasks/{task}/train.jsonl",
    output:
        "results/cache/{teacher}/task-train/{task}/manifest.json",
    log:
        "results/logs/cache_train_logits/{teacher}/{task}.log",
    wildcard_constraints:
        teacher=PLAN.encoder_teachers,
    conda:
        "../../envs/medistill.yaml"
    threads: PLAN.rule_threads("gpu_rules")
    resources:
        **PLAN.rule_resources("gpu_rules"),
    params:
        settings=PLAN.cache_settings,
    script:
        "../scripts/cache_teacher_logits.py"


# The fine-tuned teacher's hidden states over a corpus and over the task's train split, for the
# task stage's intermediate-layer transfer (`distill.intermediate`).
rule cache_teacher_hidden:
    input:
        teacher=PLAN.teacher_model,
        sentences="results/corpus/{corpus}/augmented.jsonl",
    output:
        "results/cache/{teacher}/{corpus}/hidden/{task}/manifest.json",
    log:
        "results/logs/cache_teacher_hidden/{teacher}/{corpus}/{task}.log",
    conda:
        "../../envs/medistill.yaml"
    threads: PLAN.rule_threads("gpu_rules")
    resources:
        **PLAN.rule_resources("gpu_rules"),
    params:
        settings=PLAN.hidden_cache_settings,
    script:
        "../scripts/cache_teacher_hidden.py"


rule cache_train_hidden:
    input:
        teacher=PLAN.teacher_model,
        sentences="results/tasks/{task}/train.jsonl",
    output:
        "results/cache/{teacher}/task-hidden-train/{task}/manifest.json",
    log:
        "results/logs/cache_train_hidden/{teacher}/{task}.log",
    conda:
        "../../envs/medistill.yaml"
    threads: PLAN.rule_threads("gpu_rules")
    resources:
        **PLAN.rule_resources("gpu_rules"),
    params:
        settings=PLAN.hidden_cache_settings,
    script:
        "../scripts/cache_teacher_hidden.py"


# The pretrained (not fine-tuned) teacher's masked-LM top-k logits and hidden states, for the
# general distillation stage.
rule cache_general:
    input:
        teacher="results/teachers/{teacher}/base",
        docs="results/corpus/{corpus}/augmented.jsonl",
    output:
        "results/cache/{teacher}/{corpus}/general/manifest.json",
    log:
        "results/logs/cache_general/{teacher}/{corpus}.log",
    conda:
        "../../envs/medistill.yaml"
    threads: PLAN.rule_threads("gpu_rules")
    resources:
        **PLAN.rule_resources("gpu_rules"),
    params:
        settings=PLAN.general_cache_settings,
    script:
        "../scripts/cache_general.py"
