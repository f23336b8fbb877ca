"""The training loop shared by teacher fine-tuning and student distillation.

One screen holds the whole step: batch -> student logits at each word's first sub-token ->
loss (KL to the teacher's temperature-softened distribution + cross-entropy on gold tags) ->
clipped AdamW step with warmup and linear decay. Checkpoints written atomically every N steps
make a killed job resume at the same step with the same data order and RNG state.
"""

from __future__ import annotations

import contextlib
import logging
import math
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm
from transformers import get_linear_schedule_with_warmup

from medistill.io import atomic_path
from medistill.tasks import collate, encode_sentences


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


def make_batch(examples: list[dict], pad_id: int) -> dict[str, torch.Tensor]:
    batch = collate(examples, pad_id)
    batch["gold"] = torch.tensor([g for e in examples for g in e["gold"]], dtype=torch.long)
    if "teacher" in examples[0]:
        batch["teacher"] = torch.from_numpy(np.concatenate([e["teacher"] for e in examples]))
    return batch


def batch_indices(n_examples: int, batch_size: int, step: int, seed: int) -> list[int]:
    """The examples of a step: a fresh seeded permutation each epoch, a pure function of step."""
    per_epoch = math.ceil(n_examples / batch_size)
    epoch, position = divmod(step, per_epoch)
    order = torch.randperm(n_examples, generator=torch.Generator().manual_seed(seed + epoch))
    return order[position * batch_size : (position + 1) * batch_size].tolist()


def distillation_loss(student, teacher, gold, temperature, kl_weight, ce_weight):
    """Word-level KL(teacher || student) at temperature T (scaled by T^2) + CE on gold tags."""
    loss = student.new_zeros(())
    if teacher is not None and kl_weight > 0:
        kl = F.kl_div(
            F.log_softmax(student / temperature, dim=-1),
            F.log_softmax(teacher / temperature, dim=-1),
            log_target=True,
            reduction="batchmean",
        )
        loss = loss + kl_weight * kl * temperature**2
    if ce_weight > 0 and (gold != -100).any():
        loss = loss + ce_weight * F.cross_entropy(student, gold, ignore_index=-100)
    return loss


def _save_checkpoint(path: Path, state: dict) -> None:
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


def train(
    model,
    examples: list[dict],
    recipe: dict,
    *,
    pad_id: int,
    seed: int,
    device: str,
    checkpoint: Path,
    fingerprint: str,
    loss_weights: dict,
    desc: str,
    log_every: int = 10,
    on_log: Callable[[int, float], None] | None = None,
) -> list[dict]:
    """Train in place for recipe["steps"] steps; return the loss history [{step, loss, lr}]."""
    torch.manual_seed(seed)
    model.to(device).train()
    no_decay = ("bias", "LayerNorm.weight", "layer_norm.weight")
    groups = [
        {
            "params": [p for n, p in model.named_parameters() if not n.endswith(no_decay)],
            "weight_decay": recipe["weight_decay"],
        },
        {
            "params": [p for n, p in model.named_parameters() if n.endswith(no_decay)],
            "weight_decay": 0.0,
        },
    ]
    optimizer = torch.optim.AdamW(groups, lr=recipe["learning_rate"])
    steps = recipe["steps"]
    scheduler = get_linear_schedule_with_warmup(
        optimizer, int(recipe["warmup_ratio"] * steps), steps
    )
    start, history = 0, []
    if checkpoint.exists():
        state = torch.load(checkpoint, map_location=device, weights_only=False)
        if state["fingerprint"] == fingerprint:
            model.load_state_dict(state["model"])
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
    for step in progress:
        batch = make_batch(
            [examples[i] for i in batch_indices(len(examples), recipe["batch_size"], step, seed)],
            pad_id,
        )
        if device == "cuda":  # pinned host memory: the copy overlaps the previous step's kernels
            batch = {k: v.pin_memory().to(device, non_blocking=True) for k, v in batch.items()}
        else:
            batch = {k: v.to(device) for k, v in batch.items()}
        with autocast:
            logits = model(
                input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]
            ).logits
        words = logits[batch["word_index"] >= 0].float()  # one row per word, in sentence order
        loss = distillation_loss(words, batch.get("teacher"), batch["gold"], **loss_weights)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), recipe["max_grad_norm"])
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        progress.set_postfix(loss=f"{loss.item():.4f}")
        if step % log_every == 0 or step == steps - 1:
            history.append({"step": step, "loss": loss.item(), "lr": scheduler.get_last_lr()[0]})
            if on_log:
                on_log(step, loss.item())
        if (step + 1) % recipe["checkpoint_every"] == 0 and step + 1 < steps:
            _save_checkpoint(
                checkpoint,
                {
                    "fingerprint": fingerprint,
                    "step": step + 1,
                    "history": history,
                    "model": model.state_dict(),
                    "optimizer": optimizer.state_dict(),
                    "scheduler": scheduler.state_dict(),
                    "rng": torch.get_rng_state(),
                },
            )
    model.eval()
    return history


def distill_student(
    config: dict,
    *,
    teacher: str,
    corpus: str,
    size: str,
    teacher_dir: Path,
    corpus_path: Path,
    manifest_path: Path,
    out_dir: Path,
    checkpoint: Path,
) -> list[dict]:
    """Cut a student from the fine-tuned teacher and train it on the cached teacher logits.

    The teacher's weights only initialise the student; its outputs come from the cache, so the
    teacher never runs here.
    """
    from transformers import AutoModelForTokenClassification, AutoTokenizer

    from medistill.cache import load_cache
    from medistill.config import config_hash
    from medistill.corpus import read_jsonl
    from medistill.io import save_pretrained_atomic, write_json
    from medistill.students import count_parameters, make_student
    from medistill.tasks import documents_to_sentences
    from medistill.tracking import log_run

    remote = config["trust_remote_code"]
    tokenizer = AutoTokenizer.from_pretrained(teacher_dir, trust_remote_code=remote)
    teacher_model = AutoModelForTokenClassification.from_pretrained(
        teacher_dir, trust_remote_code=remote
    )
    spec = config["sizes"][size]
    student = make_student(teacher_model, spec["layers"], spec["layer_selection"], size)
    del teacher_model
    sentences = documents_to_sentences(read_jsonl(corpus_path), config["max_words_per_sentence"])
    manifest, logits = load_cache(manifest_path, sentences)
    labels = [student.config.id2label[i] for i in range(student.config.num_labels)]
    if manifest["labels"] != labels:
        raise ValueError(
            f"{manifest_path}: cached labels {manifest['labels']} differ from the "
            f"teacher's {labels}; delete the cache and rerun"
        )
    sentences = gold_within(sentences, labels, corpus)
    examples = build_examples(tokenizer, sentences, labels, config["max_length"], logits)
    recipe = config["distill"]
    weights = {k: recipe[k] for k in ("temperature", "kl_weight", "ce_weight")}
    history = train(
        student,
        examples,
        recipe,
        pad_id=tokenizer.pad_token_id,
        seed=config["seed"],
        device=choose_device(config["device"]),
        checkpoint=Path(checkpoint),
        fingerprint=config_hash({"recipe": recipe, "size": spec, "cache": manifest}),
        loss_weights=weights,
        desc=f"distilling {teacher}/{corpus}/{size}",
    )
    student.config.medistill_distillation = {
        "teacher": teacher,
        "corpus": corpus,
        "cache_sentences": manifest["n_sentences"],
        "recipe": recipe,
    }
    save_pretrained_atomic(student, tokenizer, out_dir)
    write_json(history, Path(out_dir) / "training_history.json")
    log_run(
        config,
        f"distill/{teacher}/{corpus}/{size}",
        params={"distill": recipe, "size": spec, "seed": config["seed"]},
        metrics={"final_train_loss": history[-1]["loss"]} | count_parameters(student),
        tags={
            "stage": "distill",
            "teacher": teacher,
            "corpus": corpus,
            "size": size,
            "licence": config["teachers"][teacher]["licence"],
        },
        history=history,
    )
    return history
