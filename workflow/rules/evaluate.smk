# Latency must not be measured next to a training job: on a workstation, profiles/local gives the
# evaluation rules every core (set-threads); on SLURM each job has its own cpus_per_task.
rule evaluate_student:
    input:
        unpack(PLAN.task_test_files),
        unpack(PLAN.baseline_counts),
        model="results/students/{teacher}/{task}/{corpus}/{size}/model",
        seeds="results/students/{teacher}/{task}/{corpus}/{size}/seeds",
    output:
        scores="results/eval/{teacher}/{corpus}/{size}/{task}.json",
        counts="results/eval/{teacher}/{corpus}/{size}/{task}.counts.json",
    log:
        "results/logs/evaluate/{teacher}/{corpus}/{size}/{task}.log",
    conda:
        "../../envs/medistill.yaml"
    threads: PLAN.rule_threads("eval_rules")
    resources:
        **PLAN.rule_resources("eval_rules"),
    params:
        role="student",
        corpus=lambda wildcards: wildcards.corpus,
        size=lambda wildcards: wildcards.size,
        runtime=lambda wildcards: PLAN.size_runtime(wildcards.size),
        reference=lambda wildcards: PLAN.reference_teacher(wildcards.teacher),
        baseline=lambda wildcards: PLAN.init_teacher(wildcards.teacher),
        settings=PLAN.evaluation_settings,
    script:
        "../scripts/evaluate.py"


rule evaluate_teacher:
    input:
        unpack(PLAN.task_test_files),
        model="results/teachers/{teacher}/{task}/model",
        seeds="results/teachers/{teacher}/{task}/seeds",
    output:
        scores="results/eval/{teacher}/teacher/{task}.json",
        counts="results/eval/{teacher}/teacher/{task}.counts.json",
    log:
        "results/logs/evaluate/{teacher}/teacher/{task}.log",
    conda:
        "../../envs/medistill.yaml"
    threads: PLAN.rule_threads("eval_rules")
    resources:
        **PLAN.rule_resources("eval_rules"),
    params:
        role="teacher",
        corpus="teacher",
        size="teacher",
        runtime="torch",
        reference=lambda wildcards: wildcards.teacher,
        baseline=lambda wildcards: wildcards.teacher,
        settings=PLAN.evaluation_settings,
    script:
        "../scripts/evaluate.py"


# The teacher in a compressed student's runtime (compress_teacher): scored and timed like the
# teacher, a row of its own (role teacher-runtime) that the report's same-runtime speedups use.
rule evaluate_teacher_runtime:
    input:
        unpack(PLAN.task_test_files),
        model="results/teachers/{teacher}/{task}/runtime/{runtime}/model",
        seeds="results/teachers/{teacher}/{task}/runtime/{runtime}/seeds",
    output:
        scores="results/eval/{teacher}/teacher-{runtime}/{task}.json",
        counts="results/eval/{teacher}/teacher-{runtime}/{task}.counts.json",
    log:
        "results/logs/evaluate/{teacher}/teacher-{runtime}/{task}.log",
    wildcard_constraints:
        runtime=PLAN.runtimes_pattern,
    conda:
        "../../envs/medistill.yaml"
    threads: PLAN.rule_threads("eval_rules")
    resources:
        **PLAN.rule_resources("eval_rules"),
    params:
        role="teacher-runtime",
        corpus="teacher",
        size=lambda wildcards: f"teacher-{wildcards.runtime}",
        runtime=lambda wildcards: wildcards.runtime,
        reference=lambda wildcards: wildcards.teacher,
        baseline=lambda wildcards: wildcards.teacher,
        settings=PLAN.evaluation_settings,
    script:
        "../scripts/evaluate.py"
