"""Encoder-decoder models of the seq2seq task family (report -> summary, report -> exercise).

- `warm_started`: a teacher that runs offline, an encoder-decoder whose encoder and decoder both
  start from a packaged encoder (BERT2BERT, Rothe et al. 2020); the decoder's cross-attention is
  new. Hub seq2seq teachers (BARThez, mT5) load with `AutoModelForSeq2SeqLM` instead.
- `shrink`: a student that keeps some of the teacher's encoder and decoder layers (Shleifer &
  Rush 2020: "shrink", before fine-tuning or distillation).
- `encode_pairs` / `collate_pairs`: source/target pairs as model inputs and labels;
  `with_encoder_states`: a frozen encoder's outputs, computed once for training.
- `teacher_topk`: the teacher's top-k next-token distribution along each target, with its tail
  mass (word-level KD, cached like the masked-LM top-k of `medistill.ner.general_cache`).
- `generate_texts` and `generation_latency`: outputs, and their CPU cost at batch 1, decoded
  freely or restricted to each source's tokens plus a `frequent_target_tokens` set (a
  BERT2BERT trained on a CPU budget invents entity subwords instead of copying them).
"""

from __future__ import annotations

import copy
import time
from collections import Counter
from pathlib import Path

import numpy as np
import torch
from torch import nn

from medistill.core.encoding import length_batches
from medistill.models.students import select_layers


def special_ids(tokenizer) -> dict[str, int]:
    """Start, end and padding ids of decoding: BERT tokenizers have no BOS/EOS, so their [CLS]
    starts a target and their [SEP] ends it (as in Rothe et al.'s BERT2BERT)."""
    start = tokenizer.bos_token_id if tokenizer.bos_token_id is not None else tokenizer.cls_token_id
    end = tokenizer.eos_token_id if tokenizer.eos_token_id is not None else tokenizer.sep_token_id
    return {
        "decoder_start_token_id": start,
        "eos_token_id": end,
        "pad_token_id": tokenizer.pad_token_id,
    }


def warm_started(encoder_dir: Path, trust_remote_code: bool = False):
    """An encoder-decoder with both halves copied from the encoder in `encoder_dir`, and its
    tokenizer; start, end and padding ids set for training and `generate`."""
    from transformers import AutoTokenizer, EncoderDecoderModel

    tokenizer = AutoTokenizer.from_pretrained(encoder_dir, trust_remote_code=trust_remote_code)
    model = EncoderDecoderModel.from_encoder_decoder_pretrained(str(encoder_dir), str(encoder_dir))
    ids = special_ids(tokenizer)
    for key, value in ids.items():
        setattr(model.config, key, value)
        setattr(model.generation_config, key, value)
    return model, tokenizer


def _layer_lists(model) -> dict[str, nn.ModuleList]:
    """The encoder's and the decoder's layer lists of a BERT2BERT or BART/T5-style model."""
    found = {}
    for half in ("encoder", "decoder"):
        module = model.get_encoder() if half == "encoder" else model.get_decoder()
        for path in ("encoder.layer", "layer", "layers", "block", "bert.encoder.layer"):
            target = module
            for name in path.split("."):
                target = getattr(target, name, None)
            if isinstance(target, nn.ModuleList):
                found[half] = (module, path)
                break
        else:
            raise TypeError(f"{type(model).__name__}: no {half} layer list found")
    return found


def layer_counts(model) -> dict[str, int]:
    """The number of layers of the model's encoder and of its decoder."""
    counts = {}
    for half, (module, path) in _layer_lists(model).items():
        for name in path.split("."):
            module = getattr(module, name)
        counts[half] = len(module)
    return counts


def freeze_whole_encoder(student, teacher) -> bool:
    """Freeze the student's encoder if it is the teacher's whole (frozen) encoder; return
    whether it did. A cut encoder stays trainable: its kept layers must learn to follow one
    another."""
    whole = layer_counts(student)["encoder"] == layer_counts(teacher)["encoder"]
    if whole:
        student.get_encoder().requires_grad_(False)
    return whole


def shrink(teacher, encoder_layers: int | None, decoder_layers: int | None, size_name: str = ""):
    """A copy of `teacher` keeping `encoder_layers` of its encoder layers and `decoder_layers`
    of its decoder layers, spread from first to last (None: all kept)."""
    student = copy.deepcopy(teacher)
    kept = {}
    for half, (module, path) in _layer_lists(student).items():
        *parents, name = path.split(".")
        owner = module
        for parent in parents:
            owner = getattr(owner, parent)
        layers = getattr(owner, name)
        wanted = encoder_layers if half == "encoder" else decoder_layers
        kept[half] = select_layers(len(layers), wanted or len(layers))
        setattr(owner, name, nn.ModuleList(layers[i] for i in kept[half]))
        for position, layer in enumerate(getattr(owner, name)):
            for module in layer.modules():  # the decoding cache is indexed by layer position
                if hasattr(module, "layer_idx"):
                    module.layer_idx = position
        _set_depth(student.config, half, len(kept[half]))
    student.config.medistill_student = {"size": size_name, "layers_kept": kept}
    return student


def _set_depth(config, half: str, layers: int) -> None:
    if hasattr(config, half) and hasattr(getattr(config, half), "num_hidden_layers"):
        getattr(config, half).num_hidden_layers = layers  # EncoderDecoderConfig
    elif hasattr(config, "num_decoder_layers"):  # T5: num_layers is the encoder's
        setattr(config, "num_layers" if half == "encoder" else "num_decoder_layers", layers)
    else:  # BART
        setattr(config, f"{half}_layers", layers)


def encode_pairs(tokenizer, pairs: list[dict], max_source: int, max_target: int) -> list[dict]:
    """`input_ids` of each source and `labels` of each target: its tokens and the end token,
    without the start token, which the model prepends when it shifts labels into decoder
    inputs."""
    sources = tokenizer([p["source"] for p in pairs], truncation=True, max_length=max_source)
    targets = tokenizer([p["target"] for p in pairs], truncation=True, max_length=max_target)
    start = special_ids(tokenizer)["decoder_start_token_id"]
    examples = []
    for source_ids, target_ids in zip(sources["input_ids"], targets["input_ids"], strict=True):
        labels = target_ids[1:] if target_ids and target_ids[0] == start else target_ids
        examples.append({"input_ids": source_ids, "labels": labels})
    return examples


def encoder_frozen(model) -> bool:
    """Whether training can change no weight of the model's encoder."""
    return not any(p.requires_grad for p in model.get_encoder().parameters())


@torch.no_grad()
def with_encoder_states(model, examples: list[dict], pad_id: int, batch_size: int, device: str):
    """`examples`, each with its source's final encoder states (`encoder_states`, float16, one
    row per source token): a frozen encoder gives every source the same states at every step,
    so training computes them once instead of once per step (the encoder is most of a
    BERT2BERT's step on CPU). In eval mode: frozen, the encoder is a feature extractor."""
    encoder = model.get_encoder().to(device).eval()
    states: list[np.ndarray | None] = [None] * len(examples)
    for indices in length_batches(examples, batch_size):
        batch = collate_pairs([examples[i] for i in indices], pad_id)
        hidden = encoder(
            input_ids=batch["input_ids"].to(device),
            attention_mask=batch["attention_mask"].to(device),
        ).last_hidden_state.float()
        for row, index in enumerate(indices):
            length = len(examples[index]["input_ids"])
            states[index] = hidden[row, :length].cpu().numpy().astype(np.float16)
    return [e | {"encoder_states": h} for e, h in zip(examples, states, strict=True)]


def collate_pairs(examples: list[dict], pad_id: int) -> dict[str, torch.Tensor]:
    """Right-padded sources (with their attention mask) and labels padded with -100."""
    source_width = max(len(e["input_ids"]) for e in examples)
    target_width = max(len(e["labels"]) for e in examples)
    input_ids = torch.full((len(examples), source_width), pad_id, dtype=torch.long)
    attention_mask = torch.zeros((len(examples), source_width), dtype=torch.long)
    labels = torch.full((len(examples), target_width), -100, dtype=torch.long)
    for row, example in enumerate(examples):
        input_ids[row, : len(example["input_ids"])] = torch.tensor(example["input_ids"])
        attention_mask[row, : len(example["input_ids"])] = 1
        labels[row, : len(example["labels"])] = torch.tensor(example["labels"])
    batch = {"input_ids": input_ids, "attention_mask": attention_mask, "labels": labels}
    if "encoder_states" in examples[0]:  # padded rows stay zero: the mask hides them
        width = examples[0]["encoder_states"].shape[-1]
        states = torch.zeros((len(examples), source_width, width))
        for row, example in enumerate(examples):
            states[row, : len(example["input_ids"])] = torch.from_numpy(
                example["encoder_states"].astype(np.float32)
            )
        batch["encoder_states"] = states
    return batch


@torch.no_grad()
def teacher_topk(model, examples: list[dict], pad_id: int, k: int, batch_size: int, device: str):
    """Per example, the teacher's top-`k` logits at each target position under teacher
    forcing (`topk_ids` [T, k], `topk_logits` [T, k]) and the log-sum-exp of the rest
    (`tail_logsumexp` [T]), so a student's KL keeps the tail's mass (`losses.topk_kl`)."""
    model.eval().to(device)
    out: list[dict] = [{}] * len(examples)
    for indices in length_batches(examples, batch_size):
        batch = collate_pairs([examples[i] for i in indices], pad_id)
        logits = model(
            input_ids=batch["input_ids"].to(device),
            attention_mask=batch["attention_mask"].to(device),
            labels=batch["labels"].to(device),
        ).logits.float()
        top = logits.topk(k, dim=-1)
        tail = logits.scatter(-1, top.indices, float("-inf")).logsumexp(dim=-1)
        for row, index in enumerate(indices):
            n = len(examples[index]["labels"])
            out[index] = {
                "topk_ids": top.indices[row, :n].int().cpu().numpy(),
                "topk_logits": top.values[row, :n].half().cpu().numpy(),
                "tail_logsumexp": tail[row, :n].cpu().numpy(),
            }
    return out


def frequent_target_tokens(tokenizer, targets: list[str], min_share: float) -> frozenset[int]:
    """The special ids and the token ids found in at least `min_share` of `targets` (the
    targets' own wording: section names, punctuation): what a restricted decoder may write
    besides its source's tokens."""
    counts = Counter()
    for target in targets:
        counts.update(set(tokenizer(target, add_special_tokens=False)["input_ids"]))
    frequent = {token for token, n in counts.items() if n / max(len(targets), 1) >= min_share}
    return frozenset(frequent | set(tokenizer.all_special_ids))


def decode_batch(
    model,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    *,
    max_new_tokens: int,
    num_beams: int,
    vocabulary: frozenset[int] | None = None,
) -> torch.Tensor:
    """`model.generate` on one batch, on the model's device; with `vocabulary`, each row may only
    write its own source's tokens and those (HF's `prefix_allowed_tokens_fn`)."""
    restriction = {}
    if vocabulary is not None:
        allowed = [
            sorted(set(ids[mask.bool()].tolist()) | vocabulary)
            for ids, mask in zip(input_ids, attention_mask, strict=True)
        ]

        def restrict(row: int, _generated: torch.Tensor) -> list[int]:
            return allowed[row]

        restriction["prefix_allowed_tokens_fn"] = restrict
    device = next(model.parameters()).device
    return model.generate(
        input_ids=input_ids.to(device),
        attention_mask=attention_mask.to(device),
        max_new_tokens=max_new_tokens,
        num_beams=num_beams,
        **restriction,
    )


@torch.no_grad()
def generate_texts(
    model,
    tokenizer,
    sources: list[str],
    *,
    max_source: int,
    max_new_tokens: int,
    num_beams: int,
    batch_size: int,
    device: str,
    vocabulary: frozenset[int] | None = None,
) -> list[str]:
    """Decoded outputs for `sources`, in their order (batched by length); with `vocabulary`,
    each output may only use its source's tokens and those (`decode_batch`)."""
    model.eval().to(device)
    encoded = tokenizer(sources, truncation=True, max_length=max_source)["input_ids"]
    features = [{"input_ids": ids} for ids in encoded]
    outputs: list[str] = [""] * len(sources)
    for indices in length_batches(features, batch_size):
        batch = collate_pairs(
            [features[i] | {"labels": []} for i in indices], tokenizer.pad_token_id
        )
        generated = decode_batch(
            model,
            batch["input_ids"],
            batch["attention_mask"],
            max_new_tokens=max_new_tokens,
            num_beams=num_beams,
            vocabulary=vocabulary,
        )
        texts = tokenizer.batch_decode(generated, skip_special_tokens=True)
        for index, text in zip(indices, texts, strict=True):
            outputs[index] = text.strip()
    return outputs


@torch.no_grad()
def generation_latency(
    model,
    tokenizer,
    sources: list[str],
    *,
    max_source: int,
    max_new_tokens: int,
    num_beams: int,
    vocabulary: frozenset[int] | None = None,
) -> dict[str, float]:
    """Milliseconds per output at batch 1 (median over `sources`, after one warm-up) and
    generated tokens per second, on the current device and thread count, decoding as
    `generate_texts` does with the same `vocabulary`."""
    model.eval()
    timings, tokens = [], 0
    for index, source in enumerate([sources[0], *sources]):
        ids = tokenizer(source, truncation=True, max_length=max_source, return_tensors="pt")
        began = time.perf_counter()
        generated = decode_batch(
            model,
            ids["input_ids"],
            ids["attention_mask"],
            max_new_tokens=max_new_tokens,
            num_beams=num_beams,
            vocabulary=vocabulary,
        )
        if index:  # the first call is the warm-up
            timings.append(time.perf_counter() - began)
            tokens += generated.shape[1] - 1
    return {
        "latency_ms_output": float(np.median(timings) * 1000),
        "tokens_per_s": tokens / sum(timings),
    }
