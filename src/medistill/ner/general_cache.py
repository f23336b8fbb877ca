"""The general cache: a pretrained (not fine-tuned) teacher's outputs for distilling an encoder
without task labels (TinyBERT's general stage), or a fine-tuned teacher's hidden states for the
task stage's intermediate-layer transfer (`cache_task_hidden`), stored with the shard machinery of
`medistill.ner.cache` (checksummed shards, resumable, a manifest checked by every reader).

* `mlm`: a masked-LM teacher's top-k logits at masked positions. Shard tensors:
  `token_counts` [sentences] int32 (sub-tokens of each sequence), `mask_counts` [sentences]
  int32, `mask_positions` [M] int32, `mask_labels` [M] int32 (the original ids there),
  `topk_ids` [M, k] int32, `topk_logits` [M, k] float16 and `tail_logsumexp` [M] float32
  (the log-sum-exp of the other vocab_size - k logits, so that the full softmax normaliser is
  logaddexp(tail, logsumexp(top-k)) and a student's KL can be computed without the vocabulary);
* `hidden`: hidden states only (teachers without an MLM head, or `k=None`).

Either kind may add `hidden.{layer}` [sub-tokens, hidden] float16 for the chosen layers
(0 = embeddings) at every non-padding position of the sequence the teacher saw: the masked
input for `mlm` (one forward pass gives both), the unmasked input for `hidden`.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import numpy as np
import torch

from medistill.core.encoding import collate, encode_sentences
from medistill.core.io import read_json
from medistill.data.spans import read_sentences
from medistill.models.teachers import has_masked_lm_head
from medistill.ner.cache import (
    DTYPE,
    caching_settings,
    check_manifest,
    finish_cache,
    load_shard,
    sentences_fingerprint,
    shard_key,
    split_rows,
    teacher_weights_sha,
    tokenizer_hash,
    write_shards,
)

GENERAL_KINDS = ("mlm", "hidden")


def mask_positions(
    input_ids: list[int], special_ids: set[int], rate: float, seed: int, sentence_index: int
) -> np.ndarray:
    """The sorted positions to mask in one sequence: `rate` of its non-special tokens, at least
    one. The generator is seeded by (seed, sentence index) alone, so a sentence gets the same
    masks whatever the shard size, batch size or order in which shards are computed."""
    candidates = np.array([i for i, t in enumerate(input_ids) if t not in special_ids], np.int64)
    count = min(len(candidates), max(1, int(rate * len(candidates) + 0.5)))
    rng = np.random.default_rng([seed, sentence_index])
    return np.sort(rng.choice(candidates, size=count, replace=False))


def _hidden_layer_indices(model, hidden_layers) -> list[int]:
    """Layer numbers as `output_hidden_states` counts them (0 = embeddings); -1 = the last."""
    count = model.config.num_hidden_layers + 1
    layers = []
    for layer in hidden_layers:
        if not -count <= layer < count:
            raise ValueError(f"hidden layer {layer} is out of range for {count - 1} layers")
        layers.append(layer % count)
    return layers


@torch.no_grad()
def _general_arrays(
    model, features, masks, pad_id, mask_id, k, layers, batch_size, device
) -> dict[str, np.ndarray]:
    """One shard's tensors; `masks` holds each sequence's mask positions (empty: no MLM)."""
    parts = defaultdict(list)
    for start in range(0, len(features), batch_size):
        rows, row_masks = features[start : start + batch_size], masks[start : start + batch_size]
        batch = collate(rows, pad_id)
        input_ids = batch["input_ids"]
        for row, positions in enumerate(row_masks):
            input_ids[row, torch.from_numpy(positions)] = mask_id
        out = model(
            input_ids=input_ids.to(device),
            attention_mask=batch["attention_mask"].to(device),
            output_hidden_states=bool(layers),
        )
        if k is not None:
            row_index = torch.tensor(
                [row for row, positions in enumerate(row_masks) for _ in positions],
                dtype=torch.long,
            )
            col_index = torch.from_numpy(np.concatenate(row_masks))
            logits = out.logits[row_index.to(device), col_index.to(device)].float()
            top = logits.topk(k, dim=-1)
            tail = logits.scatter(1, top.indices, float("-inf")).logsumexp(dim=-1)
            parts["topk_ids"].append(top.indices.int().cpu().numpy())
            parts["topk_logits"].append(top.values.half().cpu().numpy())
            parts["tail_logsumexp"].append(tail.cpu().numpy())
        # padding is on the right, so the kept positions come out sequence after sequence
        keep = batch["attention_mask"].bool().to(device)
        for layer in layers:
            parts[f"hidden.{layer}"].append(out.hidden_states[layer][keep].half().cpu().numpy())
    arrays = {name: np.concatenate(chunks) for name, chunks in parts.items()}
    arrays["token_counts"] = np.array([len(f["input_ids"]) for f in features], dtype=np.int32)
    if k is not None:
        arrays["mask_counts"] = np.array([len(m) for m in masks], dtype=np.int32)
        arrays["mask_positions"] = np.concatenate(masks).astype(np.int32)
        arrays["mask_labels"] = np.concatenate(
            [np.asarray(f["input_ids"])[m] for f, m in zip(features, masks, strict=True)]
        ).astype(np.int32)
    return arrays


def build_general_cache(
    model,
    tokenizer,
    sentences: list[dict],
    out_dir: Path,
    *,
    teacher: str,
    teacher_sha: str,
    k: int | None = 64,
    mask_rate: float = 0.15,
    mask_seed: int,
    hidden_layers=(),
    shard_size: int,
    max_length: int,
    batch_size: int,
    device: str,
) -> dict:
    """Write every missing shard of a label-free cache, then the manifest; return it.

    Kind `mlm` when the model has an MLM head and `k` is set: `mask_rate` of each sequence's
    non-special tokens (at least one, see `mask_positions`) become the mask token, always (no
    80/10/10 mix, so the student sees exactly the teacher's input), and the top-`k` logits are
    kept there. Otherwise kind `hidden`, which needs `hidden_layers`.
    """
    out_dir = Path(out_dir)
    if k is not None and model.get_output_embeddings() is None:
        k = None  # no MLM head: nothing to take the top-k of
    layers = _hidden_layer_indices(model, hidden_layers)
    if k is None and not layers:
        raise ValueError(
            f"{teacher} has no MLM head (or k is None): give hidden_layers to cache hidden states"
        )
    if k is not None and tokenizer.mask_token_id is None:
        raise ValueError(f"{teacher}'s tokenizer has no mask token: an MLM cache needs one")
    kind = "mlm" if k is not None else "hidden"
    mask = (
        {"rate": mask_rate, "seed": mask_seed, "token_id": tokenizer.mask_token_id}
        if kind == "mlm"
        else None
    )
    identity = {
        "teacher": teacher,
        "teacher_sha": teacher_sha,
        "tokenizer_hash": tokenizer_hash(tokenizer),
        "corpus_hash": sentences_fingerprint(sentences),
    }
    features = encode_sentences(tokenizer, sentences, max_length)
    special_ids = set(tokenizer.all_special_ids)
    masks = [
        mask_positions(f["input_ids"], special_ids, mask_rate, mask_seed, index)
        if kind == "mlm"
        else np.zeros(0, np.int64)
        for index, f in enumerate(features)
    ]
    model.eval().to(device)

    def compute(start: int, stop: int) -> dict[str, np.ndarray]:
        return _general_arrays(
            model,
            features[start:stop],
            masks[start:stop],
            tokenizer.pad_token_id,
            tokenizer.mask_token_id,
            k,
            layers,
            batch_size,
            device,
        )

    key = shard_key(
        kind=kind, k=k, mask=mask, hidden_layers=layers, shard_size=shard_size, **identity
    )
    shards, total_bytes = write_shards(
        out_dir, key, len(sentences), shard_size, compute, f"caching {teacher} {kind} outputs"
    )
    n_positions = sum(len(f["input_ids"]) for f in features)
    manifest = identity | {
        "kind": kind,
        "level": "token",
        "k": k,
        "dtype": DTYPE,
        "max_length": max_length,
        "mask": mask,
        "vocab_size": model.config.vocab_size if kind == "mlm" else None,
        "hidden_layers": layers,
        "hidden_input": ("masked" if kind == "mlm" else "unmasked") if layers else None,
        "hidden_size": model.config.hidden_size if layers else None,
        "n_sentences": len(sentences),
        "n_positions": n_positions,
        "n_tokens": sum(map(len, masks)) if kind == "mlm" else n_positions,
    }
    return finish_cache(out_dir, manifest, shards, total_bytes)


def load_general_cache(
    manifest_path: Path, tokenizer, sentences: list[dict], teacher_sha: str | None = None
) -> tuple[dict, list[dict]]:
    """The manifest and one record of numpy arrays per sentence, after checking the corpus,
    tokenizer and (when given) teacher weights against the manifest.

    A record has `input_ids` (int64: the exact ids the student must see, masked for `mlm`) and,
    for `mlm`, `mask_positions` and `mask_labels` (the original ids there, the MLM gold), int64,
    `topk_ids` [M, k] int64, `topk_logits` [M, k] and `tail_logsumexp` [M] float32; with hidden
    layers, `hidden` {layer: [sub-tokens, hidden] float32}.
    """
    manifest_path = Path(manifest_path)
    manifest = read_json(manifest_path)
    if manifest["kind"] not in GENERAL_KINDS:
        raise ValueError(f"{manifest_path}: a {manifest['kind']} cache, not a general one")
    check_manifest(manifest, manifest_path, sentences, tokenizer, teacher_sha)
    features = encode_sentences(tokenizer, sentences, manifest["max_length"])
    records = []
    for shard in manifest["shards"]:
        arrays = load_shard(manifest_path, shard)
        first = shard["first_sentence"]
        token_counts = arrays["token_counts"]
        per_sentence = [{} for _ in token_counts]
        for layer in manifest["hidden_layers"]:
            states = split_rows(arrays[f"hidden.{layer}"].astype(np.float32), token_counts)
            for record, state in zip(per_sentence, states, strict=True):
                record.setdefault("hidden", {})[layer] = state
        if manifest["kind"] == "mlm":
            mask_counts = arrays["mask_counts"]
            for name, dtype in [
                ("mask_positions", np.int64),
                ("mask_labels", np.int64),
                ("topk_ids", np.int64),
                ("topk_logits", np.float32),
                ("tail_logsumexp", np.float32),
            ]:
                values = split_rows(arrays[name].astype(dtype), mask_counts)
                for record, value in zip(per_sentence, values, strict=True):
                    record[name] = value
        for offset, record in enumerate(per_sentence):
            input_ids = np.array(features[first + offset]["input_ids"], dtype=np.int64)
            if "mask_positions" in record:
                input_ids[record["mask_positions"]] = manifest["mask"]["token_id"]
            records.append({"input_ids": input_ids} | record)
    return manifest, records


def cache_general(
    config: dict,
    teacher: str,
    teacher_dir: Path,
    corpus_path: Path,
    manifest_path: Path,
    *,
    k: int | None,
    mask_rate: float,
    hidden_layers,
) -> dict:
    """Run a pretrained (not fine-tuned) teacher once over the corpus and cache its MLM top-k
    logits and/or hidden states, masks seeded by `config["seed"]`."""
    from transformers import AutoModel, AutoModelForMaskedLM

    masked_lm = has_masked_lm_head(read_json(Path(teacher_dir) / "config.json"))
    loader = AutoModelForMaskedLM if masked_lm else AutoModel
    recipe = {"k": k, "mask_rate": mask_rate, "hidden_layers": hidden_layers}
    return _cache_corpus(config, teacher, teacher_dir, corpus_path, manifest_path, loader, recipe)


def cache_task_hidden(
    config: dict, teacher: str, teacher_dir: Path, corpus_path: Path, manifest_path: Path
) -> dict:
    """Run the fine-tuned teacher once over a corpus (or a task split) and cache its hidden
    states at `distill.intermediate.hidden_layers`, on the unmasked input the student sees in
    the task stage (a `hidden` cache)."""
    from transformers import AutoModelForTokenClassification

    recipe = {"k": None, "hidden_layers": config["distill"]["intermediate"]["hidden_layers"]}
    return _cache_corpus(
        config,
        teacher,
        teacher_dir,
        corpus_path,
        manifest_path,
        AutoModelForTokenClassification,
        recipe,
    )


def _cache_corpus(config, teacher, teacher_dir, corpus_path, manifest_path, loader, recipe):
    from transformers import AutoTokenizer

    remote = config["trust_remote_code"]
    model = loader.from_pretrained(teacher_dir, trust_remote_code=remote)
    tokenizer = AutoTokenizer.from_pretrained(teacher_dir, trust_remote_code=remote)
    sentences = read_sentences(corpus_path, config["max_words_per_sentence"])
    return build_general_cache(
        model,
        tokenizer,
        sentences,
        Path(manifest_path).parent,
        teacher=teacher,
        teacher_sha=teacher_weights_sha(teacher_dir),
        mask_seed=config["seed"],
        **recipe,
        **caching_settings(config),
    )
