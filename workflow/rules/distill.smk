# The checkpoints sit outside the declared outputs (see finetune_teacher). Sizes with `layers`
# are trained here; sizes with `compress` are made from a trained size by compress_student.
# The corpus `gold` (sweep.baselines) trains the same students on gold labels alone.
rule distill_student:
    input:
        unpack(PLAN.distill_inputs),
        teacher=PLAN.teacher_model,
        train="results/tasks/{task}/train.jsonl",
        dev="results/tasks/{task}/dev.jsonl",
        labels="results/tasks/{task}/labels.json",
    output:
        model=directory("results/students/{teacher}/{task}/{corpus}/{size}/model"),
        seeds=directory("results/students/{teacher}/{task}/{corpus}/{size}/seeds"),
    log:
        "results/logs/distill_student/{teacher}/{task}/{corpus}/{size}.log",
    wildcard_constraints:
        size=PLAN.trained_sizes,
    conda:
        "../../envs/medistill.yaml"
    threads: PLAN.rule_threads("gpu_rules")
    resources:
        **PLAN.rule_resources("gpu_rules"),
    params:
        checkpoint="results/checkpoints/students/{teacher}/{task}/{corpus}/{size}.pt",
        settings=PLAN.distill_settings,
    script:
        "../scripts/distill_student.py"


# Post-training compression (int8 dynamic quantisation, ONNX export) of a trained student,
# every seed's run.
rule compress_student:
    input:
        unpack(PLAN.compressed_from),
    output:
        model=directory("results/students/{teacher}/{task}/{corpus}/{size}/model"),
        seeds=directory("results/students/{teacher}/{task}/{corpus}/{size}/seeds"),
    log:
        "results/logs/compress_student/{teacher}/{task}/{corpus}/{size}.log",
    wildcard_constraints:
        size=PLAN.compressed_sizes,
    conda:
        "../../envs/medistill.yaml"
    threads: PLAN.rule_threads("cpu_rules")
    resources:
        **PLAN.rule_resources("cpu_rules"),
    params:
        kind=PLAN.compress_kind,
        settings=settings("trust_remote_code"),
    script:
        "../scripts/compress_model.py"


# The teacher compressed like the swept students (each `compress` kind among sizes), every
# seed's run: its row gives a compressed student's speedup against the teacher in the same
# runtime, not only against the float PyTorch teacher.
rule compress_teacher:
    input:
        model="results/teachers/{teacher}/{task}/model",
        seeds="results/teachers/{teacher}/{task}/seeds",
    output:
        model=directory("results/teachers/{teacher}/{task}/runtime/{runtime}/model"),
        seeds=directory("results/teachers/{teacher}/{task}/runtime/{runtime}/seeds"),
    log:
        "results/logs/compress_teacher/{teacher}/{task}/{runtime}.log",
    wildcard_constraints:
        runtime=PLAN.runtimes_pattern,
    conda:
        "../../envs/medistill.yaml"
    threads: PLAN.rule_threads("cpu_rules")
    resources:
        **PLAN.rule_resources("cpu_rules"),
    params:
        kind=lambda wildcards: wildcards.runtime,
        settings=settings("trust_remote_code"),
    script:
        "../scripts/compress_model.py"
