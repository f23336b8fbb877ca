# Evaluation takes every core so that latency is never measured next to a training job.
rule evaluate_student:
    input:
        unpack(task_test_files),
        model="results/students/{teacher}/{corpus}/{size}/model",
    output:
        "results/eval/{teacher}/{corpus}/{size}/{task}.json",
    log:
        "results/logs/evaluate/{teacher}/{corpus}/{size}/{task}.log",
    conda:
        "../../envs/medistill.yaml"
    threads: workflow.cores
    params:
        role="student",
    script:
        "../scripts/evaluate.py"


rule evaluate_teacher:
    input:
        unpack(task_test_files),
        model="results/teachers/{teacher}/{task}/model",
    output:
        "results/eval/{teacher}/teacher/{task}.json",
    log:
        "results/logs/evaluate/{teacher}/teacher/{task}.log",
    conda:
        "../../envs/medistill.yaml"
    threads: workflow.cores
    params:
        role="teacher",
    script:
        "../scripts/evaluate.py"
