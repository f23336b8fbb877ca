# Generative taggers in the NER comparison (config `generative`): a fine-tuned encoder-decoder
# (sentence -> `TYPE: mention` lines) or a prompted causal LM, scored on sweep.task's test and
# robustness sets by the same protocol as the encoder teacher and students; their rows join
# the NER report.


rule finetune_generative_tagger:
    input:
        base=lambda wildcards: f"results/teachers/{tagger_spec(wildcards)['from']}/base",
        train="results/tasks/{task}/train.jsonl",
        dev="results/tasks/{task}/dev.jsonl",
    output:
        model=directory("results/generative/{tagger}/{task}/model"),
        seeds=directory("results/generative/{tagger}/{task}/seeds"),
    log:
        "results/logs/generative/finetune/{tagger}/{task}.log",
    conda:
        "../../envs/medistill.yaml"
    threads: rule_threads("gpu_rules")
    resources:
        **rule_resources("gpu_rules"),
    params:
        checkpoint="results/checkpoints/generative/{tagger}/{task}.pt",
        settings=generative_settings,
    script:
        "../scripts/finetune_generative_tagger.py"


rule evaluate_generative_tagger:
    input:
        unpack(task_test_files),
        unpack(generative_model),
        train="results/tasks/{task}/train.jsonl",
    output:
        "results/generative/{tagger}/{task}/eval.json",
    log:
        "results/logs/generative/evaluate/{tagger}/{task}.log",
    conda:
        "../../envs/medistill.yaml"
    threads: rule_threads("eval_rules")
    resources:
        **rule_resources("eval_rules"),
    params:
        reference=lambda wildcards: SWEEP["teachers"][0],
        settings=generative_settings,
    script:
        "../scripts/evaluate_generative_tagger.py"
