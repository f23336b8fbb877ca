rule build_corpus:
    input:
        PLAN.external_corpus_files,
    output:
        docs="results/corpus/{corpus}/documents.jsonl",
        stats="results/corpus/{corpus}/build_stats.json",
    log:
        "results/logs/build_corpus/{corpus}.log",
    conda:
        "../../envs/medistill.yaml"
    threads: PLAN.rule_threads("cpu_rules")
    resources:
        **PLAN.rule_resources("cpu_rules"),
    params:
        spec=PLAN.corpus_settings,
    script:
        "../scripts/build_corpus.py"


rule augment_corpus:
    input:
        docs="results/corpus/{corpus}/documents.jsonl",
        build_stats="results/corpus/{corpus}/build_stats.json",
    output:
        docs="results/corpus/{corpus}/augmented.jsonl",
        stats="results/corpus/{corpus}/stats.json",
    log:
        "results/logs/augment_corpus/{corpus}.log",
    conda:
        "../../envs/medistill.yaml"
    threads: PLAN.rule_threads("cpu_rules")
    resources:
        **PLAN.rule_resources("cpu_rules"),
    params:
        spec=PLAN.augmentation_settings,
    script:
        "../scripts/augment_corpus.py"
