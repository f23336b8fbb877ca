# Config validation (before any job) and the input functions shared by the rule files.
from pathlib import Path

from snakemake.exceptions import WorkflowError

from medistill.config import ConfigError, validate_config

try:
    config.update(
        validate_config(
            config, where=", ".join(map(str, workflow.configfiles)) or "config"
        )
    )
except ConfigError as error:
    raise WorkflowError(str(error)) from None

TASK = config["sweep"]["task"]
SWEEP = config["sweep"]


wildcard_constraints:
    teacher="[^/]+",
    corpus="[^/]+",
    size="[^/]+",
    task="[^/]+",


def teacher_model(wildcards):
    return f"results/teachers/{wildcards.teacher}/{TASK}/model"


def task_test_files(wildcards):
    folder = f"results/tasks/{wildcards.task}"
    return {"clean": f"{folder}/test.jsonl", "typo5": f"{folder}/test_typo5.jsonl"}


def evaluation_files(wildcards):
    teachers = [f"results/eval/{t}/teacher/{TASK}.json" for t in SWEEP["teachers"]]
    students = expand(
        "results/eval/{teacher}/{corpus}/{size}/{task}.json",
        teacher=SWEEP["teachers"],
        corpus=SWEEP["corpora"],
        size=SWEEP["sizes"],
        task=TASK,
    )
    return teachers + students
