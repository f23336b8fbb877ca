"""Model cards: a README.md in each model folder, so a copied folder explains itself.

The card is written by the evaluation step, once the scores exist, next to the weights. It says
where the model comes from (teacher, corpus, licences), how it was trained (losses), what it
scores, and what it is and is not for. No corpus text goes into a card.

Writing into a model folder after the job that produced it does not make Snakemake rerun
anything: a ``directory()`` output's age is that of the ``.snakemake_timestamp`` file Snakemake
puts in it, which the card leaves untouched.
"""

from __future__ import annotations

import json
from pathlib import Path

from medistill.core.io import atomic_write
from medistill.data.sources import corpus_licence
from medistill.data.synthetic import SYNTHETIC_LICENCE


def _read(path: Path):
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None


def _fmt(value, digits: int = 3) -> str:
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return str(value)


def _losses(model_dir: Path, model_config: dict) -> list[str]:
    lines = []
    recipe = (model_config.get("medistill_distillation") or {}).get("recipe")
    if recipe:
        lines.append(
            f"- Distillation loss: {recipe.get('kl_weight')} x KL(teacher || student) at "
            f"temperature {recipe.get('temperature')} (scaled by T^2) + {recipe.get('ce_weight')}"
            " x cross-entropy on gold tags, word level."
        )
        lines.append(
            f"- Recipe: {recipe.get('steps')} steps, batch {recipe.get('batch_size')}, "
            f"learning rate {recipe.get('learning_rate')}, AdamW with linear warm-up and decay."
        )
    else:
        lines.append("- Fine-tuning loss: cross-entropy on gold IOB2 tags, word level.")
    history = [p for p in _read(model_dir / "training_history.json") or [] if "loss" in p]
    if history:
        lines.append(
            f"- Training loss: {history[0]['loss']:.4f} at step {history[0]['step']} -> "
            f"{history[-1]['loss']:.4f} at step {history[-1]['step']} "
            "(full curve in `training_history.json`)."
        )
    return lines


def model_card(model_dir: str | Path, evaluation: dict, config: dict) -> str:
    """The Markdown model card of the model in `model_dir`, given its evaluation record."""
    model_dir = Path(model_dir)
    model_config = _read(model_dir / "config.json") or {}
    teacher = evaluation["teacher"]
    teacher_spec = config["teachers"][teacher]
    teacher_licence = teacher_spec["licence"]
    is_student = evaluation["role"] == "student"
    corpus = evaluation["corpus"]
    task = evaluation["task"]
    title = (
        f"{teacher} / {corpus} / {evaluation['size']} (distilled student)"
        if is_student
        else f"{teacher} (fine-tuned teacher)"
    )
    front = [
        "---",
        f"license: {teacher_licence.lower() if ' ' not in teacher_licence else 'other'}",
        "language: [fr]",
        "pipeline_tag: token-classification",
        "tags: [medistill, ner, medical, french"
        + (", knowledge-distillation]" if is_student else "]"),
        "---",
    ]
    lines = [*front, "", f"# {title}", ""]
    student = evaluation.get("student") or model_config.get("medistill_student") or {}
    if is_student:
        lines += [
            f"A {student.get('layers', '?')}-layer student cut from the fine-tuned teacher "
            f"`{teacher}` (teacher layers kept: {student.get('teacher_layers_kept', '?')}, "
            f"hidden size {student.get('hidden_size', '?')}) and distilled on the teacher's "
            f"logits over the corpus `{corpus}`, for the task `{task}`.",
        ]
    else:
        lines += [
            f"The teacher `{teacher}` (source `{teacher_spec.get('source', '?')}`) fine-tuned on "
            f"the train split of the task `{task}`; the students of this sweep are cut from it.",
        ]
    lines += [
        "",
        "Open it with `AutoModelForTokenClassification.from_pretrained(<this folder>)` or "
        '`pipeline("token-classification", model=<this folder>)`.',
        "",
        "## Provenance and licences",
        "",
        "| | name | licence |",
        "|---|---|---|",
        f"| teacher | `{teacher}` (`{teacher_spec.get('source', '?')}`) | {teacher_licence} |",
    ]
    if corpus in config["corpora"]:  # a distilled student's (a gold-only twin has none)
        licence = corpus_licence(config["corpora"][corpus])
        lines.append(f"| distillation corpus | `{corpus}` | {licence} |")
    task_files = config["tasks"][task].get("files")
    if task_files:  # real annotated data: its own terms, named where it was read from
        task_data = f"`{task}` ({task_files.get('path') or task_files.get('name')})"
        task_licence = "the dataset's own terms"
    else:
        task_data, task_licence = f"`{task}` (synthetic reports)", SYNTHETIC_LICENCE
    lines += [
        f"| task data | {task_data} | {task_licence} |",
        "",
        "The weights derive from the teacher's: its licence applies to this model.",
        "",
        "## Training",
        "",
        *_losses(model_dir, model_config),
        "",
        "## Scores",
        "",
        f"On the test split of `{task}` ({evaluation.get('n_test_sentences', '?')} sentences; "
        "seqeval entity-level scores, strict IOB2):",
        "",
        "| metric | value |",
        "|---|---|",
    ]
    for key, label in (
        ("f1", "F1 (micro)"),
        ("precision", "precision"),
        ("recall", "recall"),
        ("f1_macro", "F1 (macro over entity types)"),
        ("f1_typo5", "F1 with typos in 5% of words"),
        ("params_total", "parameters"),
        ("params_non_embedding", "parameters outside embeddings"),
        ("disk_mb", "size on disk (MB)"),
        ("latency_ms_b1", "CPU latency, batch 1, median (ms)"),
        ("latency_ms_b1_p95", "CPU latency, batch 1, p95 (ms)"),
        ("latency_threads", "CPU threads for latency"),
    ):
        if key in evaluation:
            lines.append(f"| {label} | {_fmt(evaluation[key])} |")
    per_type = evaluation.get("per_type") or {}
    if per_type:
        lines += [
            "",
            "| entity type | precision | recall | F1 | support |",
            "|---|---|---|---|---|",
        ]
        nan = float("nan")
        for name, row in sorted(per_type.items()):
            f1 = row.get("f1", row.get("f1-score", nan))
            lines.append(
                f"| {name} | {_fmt(row.get('precision', nan))} | {_fmt(row.get('recall', nan))} "
                f"| {_fmt(f1)} | {row.get('support', '')} |"
            )
    lines += [
        "",
        "## Intended use and limits",
        "",
        "- Intended use: research on small, CPU-friendly French clinical named-entity "
        "recognition (disorders, signs and symptoms, drugs, anatomy, procedures), and as a "
        "baseline for deploying such models on a hospital's own machines.",
        "- Not a medical device: do not use its output for diagnosis or treatment decisions "
        "without human review.",
        "- Trained and scored on synthetic reports: scores on real clinical text will differ, "
        "usually for the worse; validate on your own annotated data before any use.",
        "- Latency was measured on the machine that ran the sweep, with the thread count above; "
        "it is a relative figure, not a guarantee.",
        "- Entity types, spelling variants and abbreviations absent from the lexicons are likely "
        "to be missed; typos cost F1 (see the robustness score above).",
        "",
    ]
    return "\n".join(lines)


def write_model_card(model_dir: str | Path, evaluation: dict, config: dict) -> Path:
    """Write (or refresh) README.md in the model folder, atomically; return its path."""
    path = Path(model_dir) / "README.md"
    with atomic_write(path) as handle:
        handle.write(model_card(model_dir, evaluation, config))
    return path
