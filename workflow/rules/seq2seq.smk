# The seq2seq family: report -> summary or exercise. The teacher (a BERT2BERT warm-started from
# a prepared encoder, or a hub encoder-decoder) is fine-tuned on gold pairs; students keep some
# of its encoder and decoder layers and learn by one of three routes (Shleifer & Rush 2020):
# `shrink` (gold pairs alone, corpus `gold`), `sequence` (+ the teacher's outputs on a transfer
# corpus) and `word` (+ KL to its cached top-k next-token distributions). Same grid, tracking
# and report as the NER family; its files live under results/seq2seq/.


wildcard_constraints:
    route=S2S.routes_pattern,


rule prepare_pairs:
    input:
        S2S.external_pair_files,
    output:
        splits=S2S.split_files(),
        stats="results/seq2seq/tasks/{task}/stats.json",
    log:
        "results/logs/seq2seq/prepare_pairs/{task}.log",
    conda:
        "../../envs/medistill.yaml"
    threads: PLAN.rule_threads("cpu_rules")
    resources:
        **PLAN.rule_resources("cpu_rules"),
    params:
        settings=S2S.pairs_settings,
    script:
        "../scripts/prepare_pairs.py"


rule finetune_seq2seq_teacher:
    input:
        base="results/teachers/{teacher}/base",
        train="results/seq2seq/tasks/{task}/train.jsonl",
        dev="results/seq2seq/tasks/{task}/dev.jsonl",
    output:
        model=directory("results/seq2seq/teachers/{teacher}/{task}/model"),
        seeds=directory("results/seq2seq/teachers/{teacher}/{task}/seeds"),
    log:
        "results/logs/seq2seq/finetune_teacher/{teacher}/{task}.log",
    wildcard_constraints:
        teacher=S2S.finetuned_pattern,
    conda:
        "../../envs/medistill.yaml"
    threads: PLAN.rule_threads("gpu_rules")
    resources:
        **PLAN.rule_resources("gpu_rules"),
    params:
        checkpoint="results/checkpoints/seq2seq/teachers/{teacher}/{task}.pt",
        settings=S2S.finetune_settings,
    script:
        "../scripts/finetune_seq2seq_teacher.py"


rule cache_teacher_outputs:
    input:
        teacher="results/seq2seq/teachers/{teacher}/{task}/model",
        docs="results/corpus/{corpus}/augmented.jsonl",
        train="results/seq2seq/tasks/{task}/train.jsonl",
    output:
        "results/seq2seq/cache/{teacher}/{task}/{corpus}/outputs.jsonl",
    log:
        "results/logs/seq2seq/cache_teacher_outputs/{teacher}/{task}/{corpus}.log",
    wildcard_constraints:
        teacher=S2S.finetuned_pattern,
    conda:
        "../../envs/medistill.yaml"
    threads: PLAN.rule_threads("gpu_rules")
    resources:
        **PLAN.rule_resources("gpu_rules"),
    params:
        settings=S2S.outputs_settings,
    script:
        "../scripts/cache_teacher_outputs.py"


rule cache_teacher_topk:
    input:
        teacher="results/seq2seq/teachers/{teacher}/{task}/model",
        train="results/seq2seq/tasks/{task}/train.jsonl",
        outputs="results/seq2seq/cache/{teacher}/{task}/{corpus}/outputs.jsonl",
    output:
        "results/seq2seq/cache/{teacher}/{task}/{corpus}/topk.npz",
    log:
        "results/logs/seq2seq/cache_teacher_topk/{teacher}/{task}/{corpus}.log",
    wildcard_constraints:
        teacher=S2S.finetuned_pattern,
    conda:
        "../../envs/medistill.yaml"
    threads: PLAN.rule_threads("gpu_rules")
    resources:
        **PLAN.rule_resources("gpu_rules"),
    params:
        settings=S2S.topk_settings,
    script:
        "../scripts/cache_teacher_topk.py"


# One run per seed, as for the NER students; checkpoints and finished runs sit outside the
# declared outputs, so a killed job resumes.
rule distill_seq2seq_student:
    input:
        unpack(S2S.distill_inputs),
    output:
        model=directory(
            "results/seq2seq/students/{teacher}/{task}/{corpus}/{route}/{size}/model"
        ),
        seeds=directory(
            "results/seq2seq/students/{teacher}/{task}/{corpus}/{route}/{size}/seeds"
        ),
    log:
        "results/logs/seq2seq/distill/{teacher}/{task}/{corpus}/{route}/{size}.log",
    wildcard_constraints:
        size=S2S.trained_sizes,
    conda:
        "../../envs/medistill.yaml"
    threads: PLAN.rule_threads("gpu_rules")
    resources:
        **PLAN.rule_resources("gpu_rules"),
    params:
        checkpoint="results/checkpoints/seq2seq/students/{teacher}/{task}/{corpus}/{route}/{size}.pt",
        settings=S2S.distill_settings,
    script:
        "../scripts/distill_seq2seq_student.py"


rule compress_seq2seq_student:
    input:
        unpack(S2S.compressed_from),
    output:
        model=directory(
            "results/seq2seq/students/{teacher}/{task}/{corpus}/{route}/{size}/model"
        ),
        seeds=directory(
            "results/seq2seq/students/{teacher}/{task}/{corpus}/{route}/{size}/seeds"
        ),
    log:
        "results/logs/seq2seq/compress/{teacher}/{task}/{corpus}/{route}/{size}.log",
    wildcard_constraints:
        size=S2S.compressed_sizes,
    conda:
        "../../envs/medistill.yaml"
    threads: PLAN.rule_threads("cpu_rules")
    resources:
        **PLAN.rule_resources("cpu_rules"),
    params:
        settings=settings("trust_remote_code"),
    script:
        "../scripts/compress_seq2seq_student.py"


# Latency is measured here: as for the NER evaluations, never next to a training job on a
# workstation (profiles/local gives the evaluation rules every core).
rule evaluate_seq2seq_student:
    input:
        unpack(S2S.test_files),
        model="results/seq2seq/students/{teacher}/{task}/{corpus}/{route}/{size}/model",
        seeds="results/seq2seq/students/{teacher}/{task}/{corpus}/{route}/{size}/seeds",
        train="results/seq2seq/tasks/{task}/train.jsonl",
    output:
        "results/seq2seq/eval/{teacher}/{task}/{corpus}/{route}/{size}.json",
        "results/seq2seq/eval/{teacher}/{task}/{corpus}/{route}/{size}.outputs.jsonl",
    log:
        "results/logs/seq2seq/evaluate/{teacher}/{task}/{corpus}/{route}/{size}.log",
    conda:
        "../../envs/medistill.yaml"
    threads: PLAN.rule_threads("eval_rules")
    resources:
        **PLAN.rule_resources("eval_rules"),
    params:
        identity=lambda wildcards: S2S.identity(wildcards, "student"),
        settings=S2S.evaluation_settings,
    script:
        "../scripts/evaluate_seq2seq.py"


rule evaluate_seq2seq_teacher:
    input:
        unpack(S2S.test_files),
        unpack(S2S.teacher_folder),
        train="results/seq2seq/tasks/{task}/train.jsonl",
    output:
        "results/seq2seq/eval/{teacher}/{task}/teacher.json",
        "results/seq2seq/eval/{teacher}/{task}/teacher.outputs.jsonl",
    log:
        "results/logs/seq2seq/evaluate/{teacher}/{task}/teacher.log",
    wildcard_constraints:
        teacher=S2S.finetuned_pattern,
    conda:
        "../../envs/medistill.yaml"
    threads: PLAN.rule_threads("eval_rules")
    resources:
        **PLAN.rule_resources("eval_rules"),
    params:
        identity=lambda wildcards: S2S.identity(wildcards, "teacher"),
        settings=S2S.evaluation_settings,
    script:
        "../scripts/evaluate_seq2seq.py"


# The lead baseline (the report's first sentences): what any teacher must beat.
rule evaluate_seq2seq_lead:
    input:
        unpack(S2S.test_files),
    output:
        "results/seq2seq/eval/lead/{task}.json",
        "results/seq2seq/eval/lead/{task}.outputs.jsonl",
    log:
        "results/logs/seq2seq/evaluate/lead/{task}.log",
    conda:
        "../../envs/medistill.yaml"
    threads: PLAN.rule_threads("cpu_rules")
    resources:
        **PLAN.rule_resources("cpu_rules"),
    params:
        identity=lambda wildcards: S2S.identity(wildcards, "baseline"),
        settings=S2S.evaluation_settings,
    script:
        "../scripts/evaluate_seq2seq.py"


rule seq2seq_report:
    input:
        S2S.evaluation_files,
    output:
        csv=report(
            "results/seq2seq/report/tradeoff.csv",
            caption="../report/seq2seq_tradeoff.rst",
            category="Seq2seq",
        ),
        html=report(
            "results/seq2seq/report/report.html",
            caption="../report/seq2seq_report.rst",
            category="Seq2seq",
        ),
        plots=expand(
            "results/seq2seq/report/pareto_rougeL_{cost}.{ext}",
            cost=["latency", "params"],
            ext=["png", "svg"],
        ),
    log:
        "results/logs/seq2seq/report.log",
    conda:
        "../../envs/medistill.yaml"
    threads: PLAN.rule_threads("cpu_rules")
    resources:
        **PLAN.rule_resources("cpu_rules"),
    params:
        settings=S2S.report_settings,
    script:
        "../scripts/seq2seq_report.py"


# A prompted instruction LLM as teacher (seq2seq.llm_teachers): its outputs on the transfer
# corpus are the sequence route's targets, with their provenance (weights, prompt, decoding);
# the prompt's instruction is in the settings, so editing it reruns them.
rule cache_llm_outputs:
    input:
        docs="results/corpus/{corpus}/augmented.jsonl",
        train="results/seq2seq/tasks/{task}/train.jsonl",
    output:
        outputs="results/seq2seq/cache/{teacher}/{task}/{corpus}/outputs.jsonl",
        provenance="results/seq2seq/cache/{teacher}/{task}/{corpus}/provenance.json",
    log:
        "results/logs/seq2seq/cache_llm_outputs/{teacher}/{task}/{corpus}.log",
    wildcard_constraints:
        teacher=S2S.llm_pattern,
    conda:
        "../../envs/medistill.yaml"
    threads: PLAN.rule_threads("gpu_rules")
    resources:
        **PLAN.rule_resources("gpu_rules"),
    params:
        settings=S2S.llm_outputs_settings,
    script:
        "../scripts/cache_llm_outputs.py"


rule evaluate_seq2seq_llm_teacher:
    input:
        unpack(S2S.test_files),
        train="results/seq2seq/tasks/{task}/train.jsonl",
    output:
        "results/seq2seq/eval/{teacher}/{task}/teacher.json",
        "results/seq2seq/eval/{teacher}/{task}/teacher.outputs.jsonl",
    log:
        "results/logs/seq2seq/evaluate/{teacher}/{task}/teacher.log",
    wildcard_constraints:
        teacher=S2S.llm_pattern,
    conda:
        "../../envs/medistill.yaml"
    threads: PLAN.rule_threads("eval_rules")
    resources:
        **PLAN.rule_resources("eval_rules"),
    params:
        identity=lambda wildcards: S2S.identity(wildcards, "teacher"),
        settings=S2S.llm_evaluation_settings,
    script:
        "../scripts/evaluate_seq2seq_llm_teacher.py"
