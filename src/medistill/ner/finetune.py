"""Teacher fine-tuning: the prepared teacher with a token-classification head, trained on the
task's gold train split, one run per seed."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from medistill.core.hashing import config_hash
from medistill.core.io import read_json, read_jsonl
from medistill.models.teachers import with_label_head
from medistill.ner.objectives import TaskObjective
from medistill.training.loop import (
    build_examples,
    dev_summary,
    ner_dev_score,
    seed_list,
    stopping_free,
    train_seeds,
)


def finetune_teacher(
    config: dict,
    teacher: str,
    task: str,
    base_dir: Path,
    task_dir: Path,
    out_dir: Path,
    seeds_dir: Path,
    checkpoint: Path,
    log_run: Callable[..., object],
) -> list[dict]:
    """Fine-tune the prepared teacher on the task's train split, one run per seed, each kept at
    its best dev F1; save the best run with its tokenizer in `out_dir`, the others in
    `seeds_dir`. Returns the runs' summaries."""

    spec = config["teachers"][teacher]
    recipe = spec["finetune"]
    # A teacher may run more or fewer seeds than the students (`teachers.NAME.seeds`).
    config = config | {"seeds": spec.get("seeds", config["seeds"])}
    labels = read_json(Path(task_dir) / "labels.json")
    _, tokenizer = with_label_head(base_dir, labels, config)
    sentences = read_jsonl(Path(task_dir) / "train.jsonl")
    examples = build_examples(tokenizer, sentences, labels, config["max_length"])

    def new_model():
        model, _ = with_label_head(base_dir, labels, config)
        model.config.medistill_teacher = {
            "name": teacher,
            "source": spec["source"],
            "licence": spec["licence"],
            "task": task,
        }
        return model

    runs = train_seeds(
        config,
        new_model,
        examples,
        recipe,
        objective=TaskObjective(temperature=1.0, kl_weight=0.0, ce_weight=1.0),
        tokenizer=tokenizer,
        dev_score=ner_dev_score(config, tokenizer, read_jsonl(Path(task_dir) / "dev.jsonl")),
        checkpoint=Path(checkpoint),
        fingerprint=config_hash(
            {"source": spec["source"], "recipe": stopping_free(recipe), "n": len(examples)}
        ),
        desc=f"fine-tuning {teacher} on {task}",
        out_dir=Path(out_dir),
        seeds_dir=Path(seeds_dir),
    )
    history = read_json(Path(out_dir) / "training_history.json")
    log_run(
        f"finetune/{teacher}/{task}",
        params={"teacher": spec, "max_length": config["max_length"], "seeds": seed_list(config)},
        metrics=dev_summary(runs),
        tags={"stage": "finetune", "teacher": teacher, "task": task, "licence": spec["licence"]},
        history=history,
    )
    return runs
