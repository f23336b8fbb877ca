# Config validation (before any job) and the input functions shared by the rule files.
import re
from pathlib import Path

from snakemake.exceptions import WorkflowError

from medistill.config import BASELINE_CORPUS, ConfigError, validate_config
from medistill.tasks import ROBUSTNESS_SETS

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
# The students' corpora, and `gold` for the baselines trained on gold labels alone.
STUDENT_CORPORA = SWEEP["corpora"] + ([BASELINE_CORPUS] if SWEEP["baselines"] else [])


wildcard_constraints:
    teacher="[^/]+",
    corpus="[^/]+",
    size="[^/]+",
    task="[^/]+",


# Sizes trained by distill_student and sizes compressed from another size, as wildcard
# patterns that keep the two rules apart ("(?!)" matches nothing when a list is empty).
def _names_pattern(names):
    return "|".join(map(re.escape, names)) or "(?!)"


TRAINED_SIZES = _names_pattern(n for n, s in config["sizes"].items() if "layers" in s)
COMPRESSED_SIZES = _names_pattern(
    n for n, s in config["sizes"].items() if "compress" in s
)


def fine_tuned(teacher):
    spec = config["teachers"][teacher]
    return f"results/teachers/{teacher}/{spec['task']}/model"


def init_teacher(teacher):
    """The teacher whose weights and tokenizer a student starts from (a mix's `init`)."""
    return config["teachers"][teacher].get("init", teacher)


def teacher_model(wildcards):
    return fine_tuned(init_teacher(wildcards.teacher))


def distill_inputs(wildcards):
    """What a size's mode reads: the corpus and its task logits, general cache, or both; a
    baseline (corpus `gold`) reads the task's gold labels alone (the pretrained teacher too,
    which a general-mode student is cut from)."""
    mode = config["sizes"][wildcards.size]["mode"]
    members = config["teachers"][wildcards.teacher].get("mix", [wildcards.teacher])
    init = init_teacher(wildcards.teacher)
    if wildcards.corpus == BASELINE_CORPUS:
        return {} if mode == "task" else {"base": f"results/teachers/{init}/base"}
    inputs = {"docs": f"results/corpus/{wildcards.corpus}/augmented.jsonl"}
    if mode != "general":
        inputs["cache"] = [
            f"results/cache/{m}/{wildcards.corpus}/task/manifest.json" for m in members
        ]
    if mode != "task":  # the general stage learns from the init teacher alone
        inputs["general_cache"] = (
            f"results/cache/{init}/{wildcards.corpus}/general/manifest.json"
        )
        inputs["base"] = f"results/teachers/{init}/base"
    return inputs


def compressed_from(wildcards):
    source = config["sizes"][wildcards.size]["from"]
    folder = f"results/students/{wildcards.teacher}/{wildcards.corpus}/{source}"
    return {"model": f"{folder}/model", "seeds": f"{folder}/seeds"}


def task_test_files(wildcards):
    """The clean test set and its robustness copies."""
    folder = f"results/tasks/{wildcards.task}"
    return {"clean": f"{folder}/test.jsonl"} | {
        name: f"{folder}/test_{name}.jsonl" for name in ROBUSTNESS_SETS
    }


def evaluation_files(wildcards):
    references = dict.fromkeys(init_teacher(t) for t in SWEEP["teachers"])
    teachers = [f"results/eval/{t}/teacher/{TASK}.json" for t in references]
    students = expand(
        "results/eval/{teacher}/{corpus}/{size}/{task}.json",
        teacher=SWEEP["teachers"],
        corpus=STUDENT_CORPORA,
        size=SWEEP["sizes"],
        task=TASK,
    )
    return teachers + students


# Per-job resources of each group of rules, from the config's `resources` (one place to edit),
# become sbatch options under profiles/slurm and GPU counting under profiles/local. Threads
# equal cpus_per_task, so a job uses exactly the cores SLURM gives it (capped at --cores locally).
def rule_threads(group):
    return config["resources"][group]["cpus_per_task"]


def rule_resources(group):
    spec = config["resources"][group]
    resources = {key: spec[key] for key in ("cpus_per_task", "mem_mb", "runtime")}
    if spec.get("gpu"):
        resources["gpu"] = spec["gpu"]
        if spec.get("gpu_model"):
            resources["gpu_model"] = spec["gpu_model"]
    return resources
