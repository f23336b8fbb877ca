"""Student distillation: a student cut from its teacher (see `medistill.models.students`) trained on
the teacher's cached outputs (see `medistill.ner.cache`) with the objectives of `medistill.losses`,
in task mode (word-level logits + gold tags), general mode (masked-LM top-k and hidden states,
TinyBERT's general stage) or both; and the baselines, the same students on gold tags alone.
The loop itself is `medistill.training.loop.train`.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from medistill.core.device import choose_device
from medistill.core.hashing import config_hash
from medistill.core.io import read_json, read_jsonl, save_pretrained_atomic, write_json
from medistill.data.spans import read_sentences, to_iob2
from medistill.data.tasks import BASELINE_CORPUS
from medistill.models.students import count_parameters, make_student, resolve_student_spec
from medistill.models.teachers import with_label_head
from medistill.ner.cache import load_cache
from medistill.ner.general_cache import load_general_cache
from medistill.ner.objectives import GeneralObjective, TaskObjective
from medistill.training.loop import (
    build_examples,
    dev_summary,
    ner_dev_score,
    seed_list,
    stopping_free,
    train,
    train_seeds,
)


def corpus_gold(sentences: list[dict], labels: list[str], corpus: str, keep: bool) -> list[dict]:
    """The transfer corpus's sentences, with their own gold tags only when `keep`
    (`distill.corpus_gold`) and the tags are the task's labels. By default the corpus gives the
    teacher's signal alone: gold tags the gold-only twin never sees would make "distilled vs
    twin" measure extra gold data as much as the teacher. A synthetic corpus tagged
    DISO/CHEM/... distilled for another task (E3C's CLINENTITY, say) never keeps them.
    """
    if not any("tags" in s for s in sentences):
        return sentences
    if keep and all(set(s.get("tags", ())) <= set(labels) for s in sentences):
        return sentences
    why = "distill.corpus_gold is false" if keep is False else "they are not the task's labels"
    logging.getLogger("medistill").info(
        "corpus %s: its gold tags left out (%s); distilling from teacher logits only", corpus, why
    )
    return [{k: v for k, v in s.items() if k != "tags"} for s in sentences]


def _general_stage(
    config: dict, spec: dict, size: str, base_dir: Path, sentences, manifest_path, folder: Path
) -> Path:
    """Distil the student encoder from the general cache (TinyBERT's general stage).

    The result is saved in `folder` (beside the checkpoints, not a declared output) so the task
    stage of a killed job restarts from it instead of redoing this stage.
    """
    from transformers import AutoConfig, AutoModel, AutoModelForMaskedLM, AutoTokenizer

    remote = config["trust_remote_code"]
    tokenizer = AutoTokenizer.from_pretrained(base_dir, trust_remote_code=remote)
    manifest, records = load_general_cache(manifest_path, tokenizer, sentences)
    general = config["distill"]["general"]
    recipe = config["distill"] | {"steps": general["steps"]}
    fingerprint = config_hash({"recipe": recipe, "size": spec, "cache": manifest["shards"]})
    if (folder / "fingerprint.json").exists() and read_json(folder / "fingerprint.json") == [
        fingerprint
    ]:
        return folder
    teacher_config = AutoConfig.from_pretrained(base_dir, trust_remote_code=remote)
    loader = AutoModelForMaskedLM if manifest["kind"] == "mlm" else AutoModel
    student = make_student(loader.from_pretrained(base_dir, trust_remote_code=remote), spec, size)
    objective = GeneralObjective(
        general,
        student_width=student.config.hidden_size,
        student_depth=student.config.num_hidden_layers,
        teacher_width=teacher_config.hidden_size,
        teacher_depth=teacher_config.num_hidden_layers,
        hidden_layers=manifest["hidden_layers"],
    )
    history = train(
        student,
        records,
        recipe,
        objective=objective,
        pad_id=tokenizer.pad_token_id,
        seed=config["seed"],
        device=choose_device(config["device"]),
        checkpoint=folder.with_suffix(".pt"),
        fingerprint=fingerprint,
        desc=f"general distillation of {size}",
    )
    save_pretrained_atomic(student, tokenizer, folder)
    write_json(history, folder / "training_history.json")
    write_json([fingerprint], folder / "fingerprint.json")
    return folder


def pseudo_labelled(sentences: list[dict], logits, labels: list[str]) -> list[dict]:
    """Self-training targets: each sentence without gold tags gets the teacher's argmax tags
    (made valid IOB2: a stray I-X starts a mention)."""
    return [
        s if "tags" in s else s | {"tags": to_iob2([labels[i] for i in word.argmax(-1)])}
        for s, word in zip(sentences, logits, strict=True)
    ]


def gold_repeats(n_transfer: int, n_gold: int, ratio: float) -> int:
    """How many copies of the train split make `ratio` of the mixed data (see `mix_examples`)."""
    if ratio <= 0:
        return 0
    if ratio >= 1 or not n_transfer:
        return 1
    return max(1, round(ratio * n_transfer / ((1 - ratio) * n_gold)))


def mix_examples(transfer: list[dict], gold_train: list[dict], ratio: float) -> list[dict]:
    """The transfer corpus's examples with the gold train split's repeated so that they make
    `ratio` of the whole (every epoch of the seeded shuffle then holds that share); the train
    split alone when `ratio` is 1."""
    if ratio >= 1 or not transfer:
        return gold_train
    return transfer + gold_train * gold_repeats(len(transfer), len(gold_train), ratio)


def epoch_budget(recipe: dict, n_transfer: int, n_gold: int) -> dict:
    """The recipe with `steps` sized from `epochs` over the mixed data of a transfer corpus of
    `n_transfer` sentences and a train split of `n_gold` (unchanged when `epochs` is unset)."""
    if recipe["epochs"] is None:
        return recipe
    ratio = recipe["gold_ratio"] if n_transfer else 1.0
    mixed = (n_transfer if ratio < 1 else 0) + n_gold * gold_repeats(n_transfer, n_gold, ratio)
    per_step = recipe["batch_size"] * recipe["grad_accumulation"]
    return recipe | {"steps": max(1, math.ceil(recipe["epochs"] * mixed / per_step))}


def mix_teacher_logits(per_teacher: list[list[np.ndarray]], weights, temperature: float):
    """Pseudo-logits whose softmax at `temperature` is the weighted mean of the teachers'.

    Word-level distributions are averaged (not logits), then turned back into logits, T log p,
    so the single-teacher loss applies unchanged: softmax(T log p / T) = p.
    """
    total = sum(weights)
    mixed = []
    for arrays in zip(*per_teacher, strict=True):
        probs = sum(
            w / total * torch.softmax(torch.from_numpy(a) / temperature, dim=-1)
            for w, a in zip(weights, arrays, strict=True)
        )
        mixed.append((temperature * probs.clamp_min(1e-12).log()).numpy())
    return mixed


def _teacher_logits(config, teacher, manifest_paths, sentences, tokenizer):
    """The cached word logits of a teacher, or the mix of its members' caches.

    Word-level logits do not depend on the tokenizer, so a mix's members may each have their
    own; only the student's (the init teacher's) is checked against its own cache.
    """

    spec = config["teachers"][teacher]
    members = list(spec.get("mix", [teacher]))
    init = spec.get("init", teacher)
    loaded = [
        load_cache(path, sentences, tokenizer=tokenizer if member == init else None)
        for member, path in zip(members, map(Path, manifest_paths), strict=True)
    ]
    labels = {tuple(manifest["labels"]) for manifest, _ in loaded}
    if len(labels) > 1:
        raise ValueError(
            f"teachers.{teacher}: the caches of {', '.join(members)} have different label sets "
            f"({sorted(labels)}); a mix needs teachers fine-tuned on one task"
        )
    if len(members) == 1:
        return loaded[0]
    weights = [spec["mix"][m] for m in members]
    per_teacher = [logits for _, logits in loaded]
    mixed = mix_teacher_logits(per_teacher, weights, config["distill"]["temperature"])
    manifest = loaded[0][0] | {"shards": [m["shards"] for m, _ in loaded], "mix": spec["mix"]}
    return manifest, mixed


def with_hidden_states(examples: list[dict], manifest_path: Path, tokenizer, sentences) -> dict:
    """Attach the fine-tuned teacher's cached hidden states (`cache_task_hidden`) to the
    examples of the same sentences; return the cache's manifest."""
    manifest, records = load_general_cache(manifest_path, tokenizer, sentences)
    for example, record in zip(examples, records, strict=True):
        if len(example["input_ids"]) != len(record["input_ids"]):
            raise ValueError(
                f"{manifest_path}: cached for sequences of another length (max_length "
                f"{manifest['max_length']}); delete the cache folder and rerun"
            )
        example["hidden"] = record["hidden"]
    return manifest


def intermediate_transfer(
    recipe: dict, spec: dict, teacher_dir: Path, hidden_layers: list[int], remote: bool
) -> dict:
    """TaskObjective's hidden-state arguments: the weights of `distill.intermediate` and the
    widths and depths to map layers across, when teacher states are cached; else none."""
    if not hidden_layers:
        return {}
    from transformers import AutoConfig

    teacher_config = AutoConfig.from_pretrained(teacher_dir, trust_remote_code=remote)
    student = resolve_student_spec(spec, teacher_config.to_dict())
    return {
        "intermediate": recipe["intermediate"],
        "student_width": student["hidden_size"],
        "student_depth": student["layers"],
        "teacher_width": teacher_config.hidden_size,
        "teacher_depth": teacher_config.num_hidden_layers,
        "hidden_layers": hidden_layers,
    }


@dataclass(frozen=True)
class StudentRun:
    """One student's job (rule distill_student): its names and the files it reads and writes.
    A baseline (corpus `gold`) has no caches; a general-mode size has `general_manifest`."""

    teacher: str
    corpus: str
    size: str
    teacher_dir: Path
    task_dir: Path
    out_dir: Path
    seeds_dir: Path
    checkpoint: Path
    base_dir: Path | None = None
    corpus_path: Path | None = None
    manifest_paths: Sequence[Path] = ()
    train_manifest_paths: Sequence[Path] = ()
    hidden_manifest: Path | None = None
    train_hidden_manifest: Path | None = None
    general_manifest: Path | None = None
    budget_corpora: Sequence[Path] = ()

    @property
    def baseline(self) -> bool:
        return self.corpus == BASELINE_CORPUS


@dataclass
class TrainingSignal:
    """What the student learns from: its examples, the objective, the recipe with its steps
    sized, the share of transfer and gold-train sentences, and the cache shards it read."""

    examples: list[dict]
    objective: TaskObjective
    recipe: dict
    share: dict = field(default_factory=lambda: {"transfer": 0.0, "gold_train": 1.0})
    n_transfer: int = 0
    cache_shards: list | None = None


def distill_student(config: dict, run: StudentRun, log_run: Callable[..., object]) -> list[dict]:
    """Train a student token classifier in the size's mode, one run per seed (see
    `train_seeds`); save the run with the best dev F1 as a model folder.

    - `task`: cut from the fine-tuned teacher (or the pretrained one with a fresh label head:
      `cut_from`), trained on its cached word logits + gold tags;
    - `general`: cut from the pretrained teacher, distilled from the general cache, then
      fine-tuned on the task's gold train split (the teacher's labels are not used);
    - `general+task`: the general stage, then the task stage (TinyBERT's two stages).
    The corpus `gold` is the baseline: the same student (same cut, same initial weights, no
    general stage) trained on the gold train split alone for the same steps, with no teacher.
    The teacher never runs here: its outputs come from the caches.
    """
    from transformers import AutoModelForTokenClassification, AutoTokenizer

    remote = config["trust_remote_code"]
    spec = config["sizes"][run.size]
    tokenizer = AutoTokenizer.from_pretrained(run.teacher_dir, trust_remote_code=remote)
    labels = read_json(Path(run.task_dir) / "labels.json")
    gold_train = read_jsonl(Path(run.task_dir) / "train.jsonl")
    sentences = []
    if run.corpus_path:  # a baseline reads the corpus only for its gold tags (corpus_gold)
        sentences = read_sentences(run.corpus_path, config["max_words_per_sentence"])
        sentences = corpus_gold(sentences, labels, run.corpus, config["distill"]["corpus_gold"])
    encoder, general_history = _student_start(config, run, spec, labels, sentences)
    if run.baseline or spec["mode"] == "general":
        # runs on gold alone (the twin, a general-mode task stage) see the same corpus gold
        gold_pool = gold_train + [s for s in sentences if "tags" in s]
        signal = _gold_signal(config, run, tokenizer, labels, gold_pool, len(gold_train))
    else:
        signal = _teacher_signal(config, run, spec, tokenizer, labels, sentences, gold_train)

    def new_model():
        student = encoder()
        student.config.medistill_distillation = {
            "teacher": run.teacher,
            "corpus": run.corpus,
            "mode": "baseline" if run.baseline else spec["mode"],
            "cut_from": spec["cut_from"] if spec["mode"] == "task" else "pretrained",
            "recipe": signal.recipe,
        }
        return student

    runs = train_seeds(
        config,
        new_model,
        signal.examples,
        signal.recipe,
        objective=signal.objective,
        tokenizer=tokenizer,
        dev_score=ner_dev_score(config, tokenizer, read_jsonl(Path(run.task_dir) / "dev.jsonl")),
        checkpoint=Path(run.checkpoint),
        fingerprint=config_hash(
            {"recipe": stopping_free(signal.recipe), "size": spec, "cache": signal.cache_shards}
        ),
        desc=f"distilling {run.teacher}/{run.corpus}/{run.size}",
        out_dir=Path(run.out_dir),
        seeds_dir=Path(run.seeds_dir),
    )
    history = general_history + read_json(Path(run.out_dir) / "training_history.json")
    write_json(history, Path(run.out_dir) / "training_history.json")
    trained = AutoModelForTokenClassification.from_pretrained(run.out_dir, trust_remote_code=remote)
    kept = max(runs, key=lambda r: r["dev_f1"])
    log_run(
        f"distill/{run.teacher}/{run.corpus}/{run.size}",
        params={"distill": signal.recipe, "size": spec, "seeds": seed_list(config)},
        metrics=dev_summary(runs)
        | count_parameters(trained)
        | _data_seen(kept, signal, len(gold_train)),
        tags={
            "stage": "distill",
            "mode": spec["mode"],
            "teacher": run.teacher,
            "corpus": run.corpus,
            "size": run.size,
            "licence": config["teachers"][run.teacher]["licence"],
        },
        history=history,
    )
    return runs


def _student_start(config: dict, run: StudentRun, spec: dict, labels: list[str], sentences):
    """A factory of the student's initial weights, and the general stage's loss history: cut
    from the fine-tuned or pretrained teacher; or, for a general mode, the pretrained cut after
    its general stage (run here). A baseline starts where its size's general stage would."""
    if run.baseline or spec["mode"] == "task":
        fine_tuned_cut = spec["mode"] == "task" and spec["cut_from"] == "fine-tuned"

        def encoder():
            if fine_tuned_cut:
                from transformers import AutoModelForTokenClassification

                model = AutoModelForTokenClassification.from_pretrained(
                    run.teacher_dir, trust_remote_code=config["trust_remote_code"]
                )
            else:
                model, _ = with_label_head(run.base_dir, labels, config)
            return make_student(model, spec, run.size)

        return encoder, []
    checkpoint = Path(run.checkpoint)
    folder = _general_stage(
        config,
        spec,
        run.size,
        Path(run.base_dir),
        sentences,
        run.general_manifest,
        checkpoint.with_name(checkpoint.stem + "-general"),
    )
    return (lambda: with_label_head(folder, labels, config)[0]), read_json(
        folder / "training_history.json"
    )


def _gold_signal(
    config: dict, run: StudentRun, tokenizer, labels: list[str], gold_pool, n_gold_train: int
) -> TrainingSignal:
    """Gold tags alone, no teacher: the largest step budget of the sweep's transfer corpora
    (`budget_corpora`) when steps are sized from epochs, so the twin trains as long."""
    corpus_sizes = [
        len(read_sentences(path, config["max_words_per_sentence"])) for path in run.budget_corpora
    ]
    recipe = max(
        (epoch_budget(config["distill"], n, n_gold_train) for n in corpus_sizes or [0]),
        key=lambda budget: budget["steps"],
    )
    return TrainingSignal(
        examples=build_examples(tokenizer, gold_pool, labels, config["max_length"]),
        objective=TaskObjective(temperature=1.0, kl_weight=0.0, ce_weight=1.0),
        recipe=recipe,
    )


def _teacher_signal(
    config: dict, run: StudentRun, spec: dict, tokenizer, labels, sentences, gold_train
) -> TrainingSignal:
    """The teacher's cached logits over the transfer corpus (and its hidden states with
    `distill.intermediate`); with `distill.gold_ratio` > 0 the gold train split with the
    teacher's logits on it too, that share of each epoch's sentences (`mix_examples`)."""
    recipe = config["distill"]
    hidden_layers = []

    def with_logits(paths, texts, hidden_path):
        manifest, logits = _teacher_logits(config, run.teacher, paths, texts, tokenizer)
        if manifest["labels"] != labels:
            raise ValueError(
                f"{paths[0]}: cached labels {manifest['labels']} differ from the task's "
                f"{labels}; delete the cache and rerun"
            )
        shards = [manifest["shards"]]
        if recipe["targets"] == "hard":  # the teacher's tags where there is no gold
            texts, logits = pseudo_labelled(texts, logits, labels), None
        examples = build_examples(tokenizer, texts, labels, config["max_length"], logits)
        if hidden_path:
            hidden = with_hidden_states(examples, hidden_path, tokenizer, texts)
            hidden_layers[:] = hidden["hidden_layers"]
            shards.append(hidden["shards"])
        return examples, shards

    examples, cache_shards = with_logits(run.manifest_paths, sentences, run.hidden_manifest)
    n_transfer = len(examples)
    gold_share = 0.0
    if recipe["gold_ratio"] > 0:
        train_examples, train_shards = with_logits(
            run.train_manifest_paths, gold_train, run.train_hidden_manifest
        )
        mixed = mix_examples(examples, train_examples, recipe["gold_ratio"])
        transfer_kept = n_transfer if recipe["gold_ratio"] < 1 else 0
        examples, cache_shards = mixed, [cache_shards, train_shards]
        # the share the mix gives, not the nominal ratio: the train split is repeated a whole
        # number of times (0.30 of the examples for a gold_ratio of 0.25, say)
        gold_share = 1.0 - transfer_kept / len(examples)
    recipe = epoch_budget(recipe, n_transfer, len(gold_train))
    weights = (
        {"temperature": 1.0, "kl_weight": 0.0, "ce_weight": 1.0}
        if recipe["targets"] == "hard"
        else {k: recipe[k] for k in ("temperature", "kl_weight", "ce_weight")}
    )
    remote = config["trust_remote_code"]
    objective = TaskObjective(
        **weights,
        **(intermediate_transfer(recipe, spec, run.teacher_dir, hidden_layers, remote)),
    )
    share = {"transfer": 1.0 - gold_share, "gold_train": gold_share}
    return TrainingSignal(examples, objective, recipe, share, n_transfer, cache_shards)


def _data_seen(kept: dict, signal: TrainingSignal, n_gold_train: int) -> dict:
    """What the kept run saw: sentences, epochs of the transfer corpus and of the gold train
    split, and the actual gold share."""
    recipe = signal.recipe
    seen = kept["steps_run"] * recipe["batch_size"] * recipe["grad_accumulation"]
    transfer = seen * signal.share["transfer"] / signal.n_transfer if signal.n_transfer else 0.0
    return {
        "sentences_seen": seen,
        "transfer_epochs": transfer,
        "gold_train_epochs": seen * signal.share["gold_train"] / n_gold_train,
        "gold_share": signal.share["gold_train"],
    }


@torch.no_grad()
def masked_lm_loss(model, records: list[dict], pad_id: int, batch_size: int = 32) -> float:
    """Mean cross-entropy of the original tokens at the cached masked positions."""

    model.eval()
    total, count = 0.0, 0
    for start in range(0, len(records), batch_size):
        batch = GeneralObjective.make_batch(records[start : start + batch_size], pad_id)
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        masked = logits[batch["mask_rows"], batch["mask_positions"]].float()
        total += F.cross_entropy(masked, batch["mask_labels"], reduction="sum").item()
        count += len(batch["mask_labels"])
    return total / count
