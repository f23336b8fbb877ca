"""The training loop every model goes through (teacher fine-tuning, student distillation and
its baselines), and one run per seed with the best dev run kept.

One screen holds the whole step: examples -> micro-batches -> the objective's loss (see
`medistill.losses`: KL to the teacher's softened distribution + cross-entropy on gold tags in
task mode; masked-LM and hidden-state terms in general mode) -> clipped AdamW step with warmup
and linear decay. Dev F1 is scored every `eval_every` steps; the best weights are kept and
training stops after `patience` scores without gain. Checkpoints written atomically every N
steps make a killed job resume at the same step with the same data order, RNG state and
optimiser moments.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import math
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm
from transformers import get_linear_schedule_with_warmup
from transformers.trainer_pt_utils import get_length_grouped_indices

from medistill.core.device import choose_device
from medistill.core.encoding import encode_sentences
from medistill.core.energy import track_energy
from medistill.core.io import (
    atomic_path,
    copy_dir_atomic,
    read_json,
    save_pretrained_atomic,
    write_json,
)
from medistill.core.schema import with_schema_defaults
from medistill.ner.scoring import ner_scores, predict_tags


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


def batch_indices(lengths: list[int], batch_size: int, step: int, seed: int) -> list[int]:
    """The examples of a step, a pure function of step (a resumed run sees the same batches).

    Each epoch is a fresh seeded permutation, grouped by length the way transformers' Trainer
    does (`group_by_length`): mega-batches of up to 50 batches are sorted by length, so a batch
    pads to little more than its own sentences; `lengths` are the examples' sub-token counts.
    """
    per_epoch = math.ceil(len(lengths) / batch_size)
    epoch, position = divmod(step, per_epoch)
    generator = torch.Generator().manual_seed(seed + epoch)
    order = get_length_grouped_indices(lengths, batch_size, generator=generator)
    return order[position * batch_size : (position + 1) * batch_size]


def _save_checkpoint(path: Path, state: dict) -> None:
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


def stopping_free(recipe: dict) -> dict:
    """The recipe without `patience` and `keep`: they only decide when a run stops and which of
    its steps it ends with, never what it does up to then, so a run fingerprinted from this
    resumes from its checkpoint after either is edited (an early-stopped run continues instead
    of starting over)."""
    return {k: v for k, v in recipe.items() if k not in ("patience", "keep")}


def keeps_best(recipe: dict) -> bool:
    """Whether a run ends with the weights of its best dev score (else its final step's)."""
    return with_schema_defaults(recipe, "training")["keep"] == "best"


def _would_have_stopped(history: list[dict], patience: int) -> bool:
    """Whether dev scores so far would already have stopped a run with this patience (its
    checkpoint then lies past where that run ends, and is not resumed)."""
    best, stale = -1.0, 0
    for score in (h["dev_f1"] for h in history if "dev_f1" in h):
        best, stale = (score, 0) if score > best else (best, stale + 1)
        if patience and stale >= patience:
            return True
    return False


def _resumable(state: dict, fingerprint: str, recipe: dict) -> bool:
    """Whether a checkpoint continues the run this recipe asks for: the same fingerprint, not
    past where this patience stops, and, when the run keeps its best dev step, holding that
    step's weights (a `keep: last` run's checkpoint has none)."""
    best = state["best"]
    return (
        state["fingerprint"] == fingerprint
        and not _would_have_stopped(state["history"], recipe["patience"])
        and (best["model"] is not None or best["step"] < 0 or not keeps_best(recipe))
    )


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
    dev_score: Callable[[torch.nn.Module], float] | None = None,
) -> list[dict]:
    """Train in place for recipe["steps"] steps; return the history [{step, loss, lr}], with
    `dev_f1` at each dev evaluation.

    A step sees `batch_size * grad_accumulation` examples in `grad_accumulation` micro-batches.
    `objective` turns examples into a batch and a batch into the loss; its own parameters (a
    projection between widths) are trained and checkpointed with the model.
    With `dev_score`, the model is scored every `eval_every` steps and at the end; it ends with
    the weights of its best dev score (model selection on dev only; `keep: last`, those of its
    final step), and stops early after `patience` evaluations without improvement (0: never).
    """
    recipe = with_schema_defaults(recipe, "training")
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
    steps, micro = recipe["steps"], recipe["grad_accumulation"]
    scheduler = get_linear_schedule_with_warmup(
        optimizer, int(recipe["warmup_ratio"] * steps), steps
    )
    start, history = 0, []
    best = {"score": -1.0, "step": -1, "model": None, "stale": 0}
    if checkpoint.exists():
        state = torch.load(checkpoint, map_location=device, weights_only=False)
        if _resumable(state, fingerprint, recipe):
            model.load_state_dict(state["model"])
            objective.load_state_dict(state["objective"])
            optimizer.load_state_dict(state["optimizer"])
            scheduler.load_state_dict(state["scheduler"])
            torch.set_rng_state(state["rng"])
            start, history, best = state["step"], state["history"], state["best"]
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
    lengths = [len(example["input_ids"]) for example in examples]
    for step in progress:
        chosen = batch_indices(lengths, recipe["batch_size"] * micro, step, seed)
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
        last = step == steps - 1
        if step % log_every == 0 or last:
            history.append({"step": step, "loss": step_loss, "lr": scheduler.get_last_lr()[0]})
            if on_log:
                on_log(step, step_loss)
        if dev_score is not None and ((step + 1) % recipe["eval_every"] == 0 or last):
            score = dev_score(model)
            model.train()
            history.append({"step": step, "dev_f1": score})
            if score > best["score"]:  # a CPU copy: the best weights survive later steps
                weights = (
                    {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
                    if keeps_best(recipe)
                    else None
                )
                best = {"score": score, "step": step, "model": weights, "stale": 0}
            else:
                best["stale"] += 1
            progress.set_postfix(loss=f"{step_loss:.4f}", dev_f1=f"{score:.3f}")
            if recipe["patience"] and best["stale"] >= recipe["patience"]:
                logging.getLogger("medistill").info(
                    "%s: no dev improvement in %d evaluations, stopping at step %d (best %.4f "
                    "at step %d)",
                    desc,
                    best["stale"],
                    step,
                    best["score"],
                    best["step"],
                )
                break
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
                    "best": best,
                },
            )
    progress.close()
    if best["model"] is not None and keeps_best(recipe):  # a resumed best run's has weights
        model.load_state_dict(best["model"])
    model.eval()
    return history


def seed_list(config: dict) -> list[int]:
    """The seeds of a model's training runs: seed, seed+1, ... (`seeds` of them)."""
    return [config["seed"] + i for i in range(config["seeds"])]


def ner_dev_score(config: dict, tokenizer, dev_sentences: list[dict]):
    """The dev score of a token classifier: seqeval entity F1 on the dev sentences."""
    device = choose_device(config["device"])

    def dev_score(model) -> float:
        predicted = predict_tags(
            model,
            tokenizer,
            dev_sentences,
            config["max_length"],
            config["evaluate"]["batch_size"],
            device,
        )
        return ner_scores([s["tags"] for s in dev_sentences], predicted)["f1"]

    return dev_score


def train_seeds(
    config: dict,
    new_model: Callable[[], torch.nn.Module],
    examples: list[dict],
    recipe: dict,
    *,
    objective,
    tokenizer,
    dev_score: Callable[[torch.nn.Module], float],
    checkpoint: Path,
    fingerprint: str,
    desc: str,
    out_dir: Path,
    seeds_dir: Path,
) -> list[dict]:
    """One training run per seed, each ending at its best dev F1 (`keep: last`: its final
    step, with that step's dev F1); `out_dir` gets the run with the best dev F1 (the model the
    sweep goes on with), `seeds_dir/seed-N` the other runs (for the evaluation's mean and
    standard deviation). Returns each run's summary.

    A finished run is saved beside the checkpoints, so a killed job resumes at the next seed;
    with `fingerprint` made from `stopping_free(recipe)`, a run finished under another
    `patience` or `keep` resumes from its last checkpoint.
    """

    recipe = with_schema_defaults(recipe, "training")
    device = choose_device(config["device"])
    runs = []
    for seed in seed_list(config):
        finished = checkpoint.with_name(f"{checkpoint.stem}-seed{seed}")
        summary_path = finished / "medistill_run.json"
        done = read_json(summary_path) if summary_path.exists() else {}
        if (
            done.get("fingerprint") == fingerprint
            and done.get("patience") == recipe["patience"]
            and done.get("keep") == recipe["keep"]
        ):
            runs.append(done | {"folder": finished})
            continue
        model = new_model()
        with track_energy(config, "train") as energy:  # a resumed run counts its last part
            history = train(
                model,
                examples,
                recipe,
                objective=copy.deepcopy(objective),  # each seed from the same projection
                pad_id=tokenizer.pad_token_id,
                seed=seed,
                device=device,
                checkpoint=checkpoint.with_name(f"{checkpoint.stem}-seed{seed}.pt"),
                fingerprint=fingerprint,
                desc=f"{desc} (seed {seed})",
                dev_score=dev_score,
            )
        dev = [h for h in history if "dev_f1" in h]
        # the first of equal scores, as in train
        chosen = max(dev, key=lambda h: h["dev_f1"]) if keeps_best(recipe) else dev[-1]
        summary = {
            "seed": seed,
            "dev_f1": chosen["dev_f1"],
            "best_step": chosen["step"],
            "steps_run": history[-1]["step"] + 1,
            "patience": recipe["patience"],
            "keep": recipe["keep"],
            "energy": energy,
            "fingerprint": fingerprint,
        }
        model.config.medistill_run = {k: v for k, v in summary.items() if k != "fingerprint"}
        save_pretrained_atomic(model, tokenizer, finished)
        write_json(history, finished / "training_history.json")
        write_json(summary, summary_path)
        runs.append(summary | {"folder": finished})
    best = max(runs, key=lambda r: r["dev_f1"])
    copy_dir_atomic(best["folder"], Path(out_dir))
    for run in runs:
        if run is not best:
            copy_dir_atomic(run["folder"], Path(seeds_dir) / f"seed-{run['seed']}")
    Path(seeds_dir).mkdir(parents=True, exist_ok=True)
    write_json(training_energy(runs), Path(out_dir) / "training_energy.json")
    logging.getLogger("medistill").info(
        "%s: dev F1 per seed %s; kept seed %d",
        desc,
        {r["seed"]: round(r["dev_f1"], 4) for r in runs},
        best["seed"],
    )
    return [{k: v for k, v in r.items() if k != "folder"} for r in runs]


def training_energy(runs: list[dict]) -> dict:
    """The energy, CO2 and wall time of all the seeds' runs together: what the model cost."""
    measured = [r["energy"] for r in runs if r["energy"]]
    if not measured:  # energy.enabled is false
        return {}
    total = {"country": measured[0]["country"], "runs": len(measured)}
    for key in ("energy_kwh", "co2_kg", "duration_s"):
        if all(key in m for m in measured):
            total[key] = sum(m[key] for m in measured)
    return total


def dev_summary(runs: list[dict]) -> dict:
    """Dev F1 of the kept run and over the seeds, for the tracking server."""
    scores = [r["dev_f1"] for r in runs]
    return {
        "best_dev_f1": max(scores),
        "dev_f1_mean": float(np.mean(scores)),
        "dev_f1_std": float(np.std(scores, ddof=1)) if len(scores) > 1 else 0.0,
    }
