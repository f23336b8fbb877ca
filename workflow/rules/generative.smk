# Generative taggers in the NER comparison (config `generative`): a fine-tuned encoder-decoder
# or causal LM (sentence -> `TYPE: mention` lines) or a prompted causal LM, scored on sweep.task's test and
# robustness sets by the same protocol as the encoder teacher and students; their rows join
# the NER report.


rule finetune_generative_tagger:
    input:
        unpack(PLAN.tagger_base),
        train="results/tasks/{task}/train.jsonl",
        dev="results/tasks/{task}/dev.jsonl",
        labels="results/tasks/{task}/labels.json",
    output:
        model=directory("results/generative/{tagger}/{task}/model"),
        seeds=directory("results/generative/{tagger}/{task}/seeds"),
    log:
        "results/logs/generative/finetune/{tagger}/{task}.log",
    conda:
        "../../envs/medistill.yaml"
    threads: PLAN.rule_threads("gpu_rules")
    resources:
        **PLAN.rule_resources("gpu_rules"),
    params:
        checkpoint="results/checkpoints/generative/{tagger}/{task}.pt",
        settings=PLAN.generative_settings,
    script:
        "../scripts/finetune_generative_tagger.py"


rule evaluate_generative_tagger:
    input:
        unpack(PLAN.task_test_files),
        unpack(PLAN.generative_model),
        train="results/tasks/{task}/train.jsonl",
        labels="results/tasks/{task}/labels.json",
    output:
        "results/generative/{tagger}/{task}/eval.json",
    log:
        "results/logs/generative/evaluate/{tagger}/{task}.log",
    conda:
        "../../envs/medistill.yaml"
    threads: PLAN.rule_threads("eval_rules")
    resources:
        **PLAN.rule_resources("eval_rules"),
    params:
        reference=PLAN.tagger_reference,
        settings=PLAN.generative_settings,
    script:
        "../scripts/evaluate_generative_tagger.py"


# A generative teacher (`teachers.X.labels_from`) labels the transfer corpora and the task's
# train split with its tagger; the silver tags are cached where an encoder teacher's logits
# would be, so distill_student reads them unchanged (`medistill.generative.silver_labels`).
rule cache_silver_tags:
    input:
        unpack(PLAN.silver_inputs),
        sentences="results/corpus/{corpus}/augmented.jsonl",
    output:
        "results/cache/{teacher}/{corpus}/task/{task}/manifest.json",
    log:
        "results/logs/cache_silver_tags/{teacher}/{corpus}/{task}.log",
    wildcard_constraints:
        teacher=PLAN.generative_teachers,
    conda:
        "../../envs/medistill.yaml"
    threads: PLAN.rule_threads("gpu_rules")
    resources:
        **PLAN.rule_resources("gpu_rules"),
    params:
        settings=PLAN.silver_settings,
    script:
        "../scripts/cache_silver_tags.py"


rule cache_silver_train_tags:
    input:
        unpack(PLAN.silver_inputs),
        sentences="results/tasks/{task}/train.jsonl",
    output:
        "results/cache/{teacher}/task-train/{task}/manifest.json",
    log:
        "results/logs/cache_silver_train_tags/{teacher}/{task}.log",
    wildcard_constraints:
        teacher=PLAN.generative_teachers,
    conda:
        "../../envs/medistill.yaml"
    threads: PLAN.rule_threads("gpu_rules")
    resources:
        **PLAN.rule_resources("gpu_rules"),
    params:
        settings=PLAN.silver_settings,
    script:
        "../scripts/cache_silver_tags.py"
