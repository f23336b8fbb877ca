"""The training loop shared by teacher fine-tuning and student distillation, and the
distillation step itself.

One screen holds the whole step: examples -> micro-batches -> the objective's loss (see
`medistill.losses`: KL to the teacher's softened distribution + cross-entropy on gold tags in
task mode; masked-LM and hidden-state terms in general mode) -> clipped AdamW step with warmup
and linear decay. Checkpoints written atomically every N steps make a killed job resume at the
same step with the same data order, RNG state and optimiser moments.
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm
from transformers import get_linear_schedule_with_warmup

from medistill.io import atomic_path
from medistill.tasks import encode_sentences


def choose_device(preference: str = "auto") -> str:
    if preference != "auto":
        return preference
    if torch.cuda.is_available():
        from medistill.runtime import claim_gpu

        claim_gpu()  # a GPU of its own when jobs run side by side on a multi-GPU machine
        return "cuda"
    if torch.backends.mps.is_available():
        return "mps"
    return "cpu"


def build_examples(tokenizer, sentences, labels, max_length, teacher_logits=None) -> list[dict]:
    """Model inputs plus word-level targets: gold tag ids (-100 when unknown), teacher logits."""
    label_id = {label: i for i, label in enumerate(labels)}
    features = encode_sentences(tokenizer, sentences, max_length)
    for i, (feature, sentence) in enumerate(zip(features, sentences, strict=True)):
        tags = sentence.get("tags")
        feature["gold"] = [label_id[t] for t in tags] if tags else [-100] * len(sentence["words"])
        if teacher_logits is not None:
            feature["teacher"] = teacher_logits[i]
    return features


def gold_within(sentences: list[dict], labels: list[str], corpus: str) -> list[dict]:
    """The sentences, without their gold tags when the corpus is labelled for another task.

    A synthetic corpus tags DISO/CHEM/...; distilling for a task with other entity types
    (E3C's CLINENTITY, say) then learns from the teacher's logits alone.
    """
    known = set(labels)
    if all(set(s.get("tags", ())) <= known for s in sentences):
        return sentences
    logging.getLogger("medistill").info(
        "corpus %s: gold tags outside the task's labels; distilling from teacher logits only",
        corpus,
    )
    return [{k: v for k, v in s.items() if k != "tags"} for s in sentences]


def batch_indices(n_examples: int, batch_size: int, step: int, seed: int) -> list[int]:
    """The examples of a step: a fresh seeded permutation each epoch, a pure function of step."""
    per_epoch = math.ceil(n_examples / batch_size)
    epoch, position = divmod(step, per_epoch)
    order = torch.randperm(n_examples, generator=torch.Generator().manual_seed(seed + epoch))
    return order[position * batch_size : (position + 1) * batch_size].tolist()


def _save_checkpoint(path: Path, state: dict) -> None:
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


def train(
    model,
    examples: list[dict],
    recipe: dict,
    *,
    objective,
    pad_id: int,
    seed: int,
    device: str,
    checkpoint: Path,
    fingerprint: str,
    desc: str,
    log_every: int = 10,
    on_log: Callable[[int, float], None] | None = None,
) -> list[dict]:
    """Train in place for recipe["steps"] steps; return the loss history [{step, loss, lr}].

    A step sees `batch_size * grad_accumulation` examples in `grad_accumulation` micro-batches.
    `objective` turns examples into a batch and a batch into the loss; its own parameters (a
    projection between widths) are trained and checkpointed with the model.
    """
    torch.manual_seed(seed)
    model.to(device).train()
    objective.to(device).train()
    named = list(model.named_parameters()) + list(objective.named_parameters())
    no_decay = ("bias", "LayerNorm.weight", "layer_norm.weight")
    groups = [
        {
            "params": [p for n, p in named if not n.endswith(no_decay)],
            "weight_decay": recipe["weight_decay"],
        },
        {"params": [p for n, p in named if n.endswith(no_decay)], "weight_decay": 0.0},
    ]
    optimizer = torch.optim.AdamW(groups, lr=recipe["learning_rate"])
    steps, micro = recipe["steps"], recipe.get("grad_accumulation", 1)
    scheduler = get_linear_schedule_with_warmup(
        optimizer, int(recipe["warmup_ratio"] * steps), steps
    )
    start, history = 0, []
    if checkpoint.exists():
        state = torch.load(checkpoint, map_location=device, weights_only=False)
        if state["fingerprint"] == fingerprint:
            model.load_state_dict(state["model"])
            objective.load_state_dict(state["objective"])
            optimizer.load_state_dict(state["optimizer"])
            scheduler.load_state_dict(state["scheduler"])
            torch.set_rng_state(state["rng"])
            start, history = state["step"], state["history"]
            logging.getLogger("medistill").info(
                "resuming %s from step %d (%s)", desc, start, checkpoint
            )
    autocast = (
        torch.autocast("cuda", dtype=torch.bfloat16)
        if device == "cuda"
        else contextlib.nullcontext()
    )
    progress = tqdm(range(start, steps), initial=start, total=steps, desc=desc, unit="step")
    began, tokens = time.perf_counter(), 0
    for step in progress:
        chosen = batch_indices(len(examples), recipe["batch_size"] * micro, step, seed)
        step_loss = 0.0
        for part in range(micro):
            indices = chosen[part * recipe["batch_size"] : (part + 1) * recipe["batch_size"]]
            if not indices:
                break
            batch = objective.make_batch([examples[i] for i in indices], pad_id)
            if device == "cuda":  # pinned host memory: the copy overlaps the running kernels
                batch = {k: v.pin_memory().to(device, non_blocking=True) for k, v in batch.items()}
            else:
                batch = {k: v.to(device) for k, v in batch.items()}
            with autocast:
                loss = objective(model, batch) / micro
            loss.backward()
            step_loss += loss.item()
            tokens += int(batch["attention_mask"].sum())
        torch.nn.utils.clip_grad_norm_([p for _, p in named], recipe["max_grad_norm"])
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        elapsed = time.perf_counter() - began
        progress.set_postfix(loss=f"{step_loss:.4f}", tok_s=f"{tokens / elapsed:.0f}")
        if step % log_every == 0 or step == steps - 1:
            history.append({"step": step, "loss": step_loss, "lr": scheduler.get_last_lr()[0]})
            if on_log:
                on_log(step, step_loss)
        if (step + 1) % recipe["checkpoint_every"] == 0 and step + 1 < steps:
            _save_checkpoint(
                checkpoint,
                {
                    "fingerprint": fingerprint,
                    "step": step + 1,
                    "history": history,
                    "model": model.state_dict(),
                    "objective": objective.state_dict(),
                    "optimizer": optimizer.state_dict(),
                    "scheduler": scheduler.state_dict(),
                    "rng": torch.get_rng_state(),
                },
            )
    model.eval()
    return history


def _general_stage(
    config: dict, spec: dict, size: str, base_dir: Path, sentences, manifest_path, folder: Path
) -> Path:
    """Distil the student encoder from the general cache (TinyBERT's general stage).

    The result is saved in `folder` (beside the checkpoints, not a declared output) so the task
    stage of a killed job restarts from it instead of redoing this stage.
    """
    from transformers import AutoConfig, AutoModel, AutoModelForMaskedLM, AutoTokenizer

    from medistill.cache import load_general_cache
    from medistill.config import config_hash
    from medistill.io import read_json, save_pretrained_atomic, write_json
    from medistill.losses import GeneralObjective
    from medistill.students import make_student

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
    from medistill.cache import load_cache

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


def distill_student(
    config: dict,
    *,
    teacher: str,
    corpus: str,
    size: str,
    teacher_dir: Path,
    base_dir: Path,
    corpus_path: Path,
    task_dir: Path,
    manifest_paths: list[Path],
    general_manifest: Path | None,
    out_dir: Path,
    checkpoint: Path,
) -> list[dict]:
    """Train a student token classifier in the size's mode; save it as a model folder.

    - `task`: cut from the fine-tuned teacher, trained on its cached word logits + gold tags;
    - `general`: cut from the pretrained teacher, distilled from the general cache, then
      fine-tuned on the task's gold train split (the teacher's labels are not used);
    - `general+task`: the general stage, then the task stage (TinyBERT's two stages).
    The teacher never runs here: its outputs come from the caches.
    """
    from transformers import AutoModelForTokenClassification, AutoTokenizer

    from medistill.config import config_hash
    from medistill.corpus import read_jsonl
    from medistill.io import read_json, save_pretrained_atomic, write_json
    from medistill.losses import TaskObjective
    from medistill.students import count_parameters, make_student
    from medistill.tasks import documents_to_sentences
    from medistill.teachers import with_label_head
    from medistill.tracking import log_run

    remote = config["trust_remote_code"]
    spec, recipe = config["sizes"][size], config["distill"]
    mode = spec["mode"]
    tokenizer = AutoTokenizer.from_pretrained(teacher_dir, trust_remote_code=remote)
    labels = read_json(Path(task_dir) / "labels.json")
    sentences = documents_to_sentences(read_jsonl(corpus_path), config["max_words_per_sentence"])
    checkpoint = Path(checkpoint)
    if mode == "task":
        student = make_student(
            AutoModelForTokenClassification.from_pretrained(teacher_dir, trust_remote_code=remote),
            spec,
            size,
        )
        general_history = []
    else:
        folder = _general_stage(
            config,
            spec,
            size,
            Path(base_dir),
            sentences,
            general_manifest,
            checkpoint.with_name(checkpoint.stem + "-general"),
        )
        general_history = read_json(folder / "training_history.json")
        student, _ = with_label_head(folder, labels, config)
    if mode == "general":  # the baseline recipe: gold tags only, no teacher logits
        examples = build_examples(
            tokenizer, read_jsonl(Path(task_dir) / "train.jsonl"), labels, config["max_length"]
        )
        objective = TaskObjective(temperature=1.0, kl_weight=0.0, ce_weight=1.0)
        cache_shards = None
    else:
        manifest, logits = _teacher_logits(config, teacher, manifest_paths, sentences, tokenizer)
        if manifest["labels"] != labels:
            raise ValueError(
                f"{manifest_paths[0]}: cached labels {manifest['labels']} differ from the "
                f"task's {labels}; delete the cache and rerun"
            )
        sentences = gold_within(sentences, labels, corpus)
        examples = build_examples(tokenizer, sentences, labels, config["max_length"], logits)
        objective = TaskObjective(
            **{k: recipe[k] for k in ("temperature", "kl_weight", "ce_weight")}
        )
        cache_shards = manifest["shards"]
    history = train(
        student,
        examples,
        recipe,
        objective=objective,
        pad_id=tokenizer.pad_token_id,
        seed=config["seed"],
        device=choose_device(config["device"]),
        checkpoint=checkpoint,
        fingerprint=config_hash({"recipe": recipe, "size": spec, "cache": cache_shards}),
        desc=f"distilling {teacher}/{corpus}/{size}",
    )
    student.config.medistill_distillation = {
        "teacher": teacher,
        "corpus": corpus,
        "mode": mode,
        "recipe": recipe,
    }
    save_pretrained_atomic(student, tokenizer, out_dir)
    write_json(general_history + history, Path(out_dir) / "training_history.json")
    log_run(
        config,
        f"distill/{teacher}/{corpus}/{size}",
        params={"distill": recipe, "size": spec, "seed": config["seed"]},
        metrics={"final_train_loss": history[-1]["loss"]} | count_parameters(student),
        tags={
            "stage": "distill",
            "mode": mode,
            "teacher": teacher,
            "corpus": corpus,
            "size": size,
            "licence": config["teachers"][teacher]["licence"],
        },
        history=general_history + history,
    )
    return history


@torch.no_grad()
def masked_lm_loss(model, records: list[dict], pad_id: int, batch_size: int = 32) -> float:
    """Mean cross-entropy of the original tokens at the cached masked positions."""
    from medistill.losses import GeneralObjective

    model.eval()
    total, count = 0.0, 0
    for start in range(0, len(records), batch_size):
        batch = GeneralObjective.make_batch(records[start : start + batch_size], pad_id)
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        masked = logits[batch["mask_rows"], batch["mask_positions"]].float()
        total += F.cross_entropy(masked, batch["mask_labels"], reduction="sum").item()
        count += len(batch["mask_labels"])
    return total / count
