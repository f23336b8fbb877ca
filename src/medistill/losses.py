"""Distillation objectives: what a student is trained to match, one module per mode.

`TaskObjective` (task mode): word-level KL to the teacher's temperature-softened label
distribution (scaled by T^2, Hinton et al.) + cross-entropy on gold tags where the corpus has
them, and optionally the fine-tuned teacher's hidden states (`HiddenTransfer`, below).
`GeneralObjective` (general mode, no labels): KL to the teacher's cached top-k masked-LM
distribution with its tail mass kept as one bucket, masked-LM cross-entropy, hidden-state
cosine or MSE through a learned projection when widths differ (DistilBERT, TinyBERT), and
self-attention-style relations between token states (MiniLMv2). Each term has its own weight in
the config's `distill` block; a zero weight switches the term off.

Objectives are modules so that their own parameters (the projection) are trained and
checkpointed with the student, and are not saved in the student's folder.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from transformers.modeling_outputs import BaseModelOutput

from medistill.encoding import collate
from medistill.seq2seq import collate_pairs


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


def topk_kl(student_logits, topk_ids, topk_logits, tail_logsumexp):
    """KL(teacher || student) over the teacher's top-k tokens plus one bucket for the rest.

    The cache keeps the log-sum-exp of the teacher's logits outside its top k, so the tail's
    probability mass is compared with the student's mass on the same tokens instead of being
    renormalised away (which would overstate the teacher's confidence).
    """
    log_q = F.log_softmax(student_logits.float(), dim=-1)
    log_q_top = log_q.gather(1, topk_ids)
    log_q_tail = torch.log1p(-log_q_top.exp().sum(-1).clamp(max=1 - 1e-6))
    teacher_all = torch.cat([topk_logits, tail_logsumexp[:, None]], dim=1)
    log_p = teacher_all - torch.logsumexp(teacher_all, dim=1, keepdim=True)
    log_q_all = torch.cat([log_q_top, log_q_tail[:, None]], dim=1)
    return (log_p.exp() * (log_p - log_q_all)).sum(-1).mean()


def hidden_state_loss(student_h, teacher_h, token_mask, kind="cosine"):
    """Mean over real tokens of 1 - cos(student, teacher) or of the squared error."""
    if kind == "cosine":
        per_token = 1 - F.cosine_similarity(student_h, teacher_h, dim=-1)
    else:
        per_token = (student_h - teacher_h).pow(2).mean(-1)
    return per_token[token_mask].mean()


def relations(hidden, attention_mask, heads):
    """Scaled dot-product relations between a layer's token states, split into `heads`.

    MiniLMv2 transfers the relations of the teacher's queries, keys and values; the cache holds
    hidden states, so the relations here are those of the states themselves. Splitting both
    models into the same number of relation heads makes the distributions comparable whatever
    the widths.
    """
    batch, length, width = hidden.shape
    split = hidden.view(batch, length, heads, width // heads).transpose(1, 2)
    scores = split @ split.transpose(-1, -2) / math.sqrt(width // heads)
    scores = scores.masked_fill(~attention_mask[:, None, None, :].bool(), float("-inf"))
    return F.log_softmax(scores, dim=-1)


def relation_loss(student_h, teacher_h, attention_mask, heads):
    log_s = relations(student_h, attention_mask, heads)
    log_t = relations(teacher_h, attention_mask, heads)
    rows = attention_mask[:, None, :, None].bool().expand_as(log_t)
    kl = torch.where(rows, log_t.exp() * (log_t - log_s), torch.zeros_like(log_t))
    return kl.nan_to_num().sum() / (rows[..., 0].sum())


class TaskObjective(nn.Module):
    """Student token classifier vs the cached word-level teacher logits and gold tags, and,
    with `intermediate` weights, its hidden states vs the fine-tuned teacher's cached ones."""

    def __init__(
        self,
        temperature: float,
        kl_weight: float,
        ce_weight: float,
        intermediate: dict | None = None,
        **dims,
    ):
        """`dims`, with `intermediate`: the widths, depths and cached layers HiddenTransfer
        maps between."""
        super().__init__()
        self.weights = {"temperature": temperature, "kl_weight": kl_weight, "ce_weight": ce_weight}
        self.hidden = HiddenTransfer(intermediate, **dims) if intermediate else None

    @staticmethod
    def make_batch(examples: list[dict], pad_id: int) -> dict[str, torch.Tensor]:
        batch = collate(examples, pad_id)
        batch["gold"] = torch.tensor([g for e in examples for g in e["gold"]], dtype=torch.long)
        if "teacher" in examples[0]:
            batch["teacher"] = torch.from_numpy(np.concatenate([e["teacher"] for e in examples]))
        return batch | padded_hidden(examples, batch["input_ids"].shape[1])

    def forward(self, model, batch):
        out = model(
            input_ids=batch["input_ids"],
            attention_mask=batch["attention_mask"],
            output_hidden_states=self.hidden is not None,
        )
        words = out.logits[batch["word_index"] >= 0].float()  # one row per word, in order
        loss = distillation_loss(words, batch.get("teacher"), batch["gold"], **self.weights)
        if self.hidden is not None:
            loss = loss + self.hidden(out.hidden_states, batch)
        return loss


def padded_hidden(examples: list[dict], length: int) -> dict[str, torch.Tensor]:
    """Each cached teacher layer's states as a [batch, length, width] tensor, zero-padded."""
    batch = {}
    for layer in examples[0].get("hidden", {}):
        states = torch.zeros((len(examples), length, examples[0]["hidden"][layer].shape[1]))
        for row, example in enumerate(examples):
            states[row, : len(example["input_ids"])] = torch.from_numpy(example["hidden"][layer])
        batch[f"hidden_{layer}"] = states
    return batch


class HiddenTransfer(nn.Module):
    """Hidden-state (DistilBERT, TinyBERT) and relation (MiniLMv2) losses between the student's
    layers and the cached teacher layers they are mapped to (`layer_map`)."""

    def __init__(
        self,
        weights: dict,
        *,
        student_width: int,
        student_depth: int,
        teacher_width: int,
        teacher_depth: int,
        hidden_layers: list[int],
    ):
        super().__init__()
        self.weights = weights
        self.hidden_layers = [str(layer) for layer in hidden_layers]
        self.student_layers = layer_map(hidden_layers, teacher_depth, student_depth)
        # A learned map into the teacher's space when widths differ (TinyBERT's W_h).
        self.projection = (
            nn.Linear(student_width, teacher_width, bias=False)
            if student_width != teacher_width and hidden_layers
            else nn.Identity()
        )

    def forward(self, hidden_states, batch):
        w = self.weights
        loss = batch["attention_mask"].new_zeros((), dtype=torch.float)
        tokens = batch["attention_mask"].bool()
        for layer, student_layer in zip(self.hidden_layers, self.student_layers, strict=True):
            teacher_h = batch[f"hidden_{layer}"]
            student_h = hidden_states[student_layer].float()
            if w["hidden_weight"] > 0:
                projected = self.projection(student_h)
                loss = loss + w["hidden_weight"] * hidden_state_loss(
                    projected, teacher_h, tokens, w["hidden_loss"]
                )
            if w["relation_weight"] > 0:
                loss = loss + w["relation_weight"] * relation_loss(
                    student_h, teacher_h, batch["attention_mask"], w["relation_heads"]
                )
        return loss


class Seq2SeqObjective(nn.Module):
    """An encoder-decoder student: cross-entropy on the target tokens (gold, or the teacher's
    own outputs for sequence-level KD) and, with `kl_weight` > 0 and the teacher's cached
    top-k along the targets, word-level KD: KL to that distribution with its tail mass kept
    (at temperature 1: the cached tail's log-sum-exp cannot be re-tempered)."""

    def __init__(self, ce_weight: float = 1.0, kl_weight: float = 0.0):
        super().__init__()
        self.weights = {"ce_weight": ce_weight, "kl_weight": kl_weight}

    @staticmethod
    def make_batch(examples: list[dict], pad_id: int) -> dict[str, torch.Tensor]:
        batch = collate_pairs(examples, pad_id)
        if "topk_ids" in examples[0]:
            for key, dtype in (("topk_ids", torch.long), ("topk_logits", torch.float)):
                batch[key] = torch.from_numpy(np.concatenate([e[key] for e in examples])).to(dtype)
            tails = np.concatenate([e["tail_logsumexp"] for e in examples])
            batch["tail_logsumexp"] = torch.from_numpy(tails).float()
        return batch

    def forward(self, model, batch):
        source = (  # a frozen encoder's states, computed once (`with_encoder_states`)
            {"encoder_outputs": BaseModelOutput(last_hidden_state=batch["encoder_states"])}
            if "encoder_states" in batch
            else {"input_ids": batch["input_ids"]}
        )
        out = model(**source, attention_mask=batch["attention_mask"], labels=batch["labels"])
        loss = self.weights["ce_weight"] * out.loss
        if self.weights["kl_weight"] > 0 and "topk_ids" in batch:
            targets = out.logits[batch["labels"] != -100]  # one row per target token, in order
            kl = topk_kl(targets, batch["topk_ids"], batch["topk_logits"], batch["tail_logsumexp"])
            loss = loss + self.weights["kl_weight"] * kl
        return loss


class CausalAnswerObjective(nn.Module):
    """A causal LM fine-tuned to answer its prompt (`finetuned-llm` taggers): cross-entropy on
    the answer's tokens only (the prompt's labels are -100). The output head runs on those
    positions alone: over a 49k-token vocabulary it is a quarter of a small LM's step on the
    whole sequence."""

    make_batch = staticmethod(collate_pairs)  # labels as long as input_ids: padded alike

    def forward(self, model, batch):
        hidden = model.base_model(
            input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]
        ).last_hidden_state
        targets = batch["labels"][:, 1:]  # the token each position predicts
        answer = targets != -100
        logits = model.get_output_embeddings()(hidden[:, :-1][answer])
        return F.cross_entropy(logits.float(), targets[answer])


def layer_map(teacher_layers: list[int], teacher_depth: int, student_depth: int) -> list[int]:
    """The student hidden state matched to each cached teacher layer (0 = embeddings)."""
    return [round(layer * student_depth / teacher_depth) for layer in teacher_layers]


class GeneralObjective(nn.Module):
    """Student encoder vs the general cache: masked-LM distribution and hidden states."""

    def __init__(self, weights: dict, **dims):
        """`dims`: the widths, depths and cached layers HiddenTransfer maps between."""
        super().__init__()
        self.weights = weights
        self.hidden = HiddenTransfer(weights, **dims)

    @staticmethod
    def make_batch(examples: list[dict], pad_id: int) -> dict[str, torch.Tensor]:
        length = max(len(e["input_ids"]) for e in examples)
        input_ids = torch.full((len(examples), length), pad_id, dtype=torch.long)
        attention_mask = torch.zeros((len(examples), length), dtype=torch.long)
        for row, example in enumerate(examples):
            input_ids[row, : len(example["input_ids"])] = torch.from_numpy(example["input_ids"])
            attention_mask[row, : len(example["input_ids"])] = 1
        batch = {"input_ids": input_ids, "attention_mask": attention_mask}
        if "mask_positions" in examples[0]:
            batch["mask_rows"] = torch.cat(
                [torch.full((len(e["mask_positions"]),), r) for r, e in enumerate(examples)]
            )
            for key in ("mask_positions", "mask_labels", "topk_ids"):
                batch[key] = torch.from_numpy(np.concatenate([e[key] for e in examples])).long()
            for key in ("topk_logits", "tail_logsumexp"):
                batch[key] = torch.from_numpy(np.concatenate([e[key] for e in examples])).float()
        return batch | padded_hidden(examples, length)

    def forward(self, model, batch):
        w = self.weights
        out = model(
            input_ids=batch["input_ids"],
            attention_mask=batch["attention_mask"],
            output_hidden_states=True,
        )
        loss = batch["input_ids"].new_zeros((), dtype=torch.float)
        if "mask_positions" in batch and hasattr(out, "logits"):
            masked = out.logits[batch["mask_rows"], batch["mask_positions"]].float()
            if w["mlm_kl_weight"] > 0:
                kl = topk_kl(
                    masked, batch["topk_ids"], batch["topk_logits"], batch["tail_logsumexp"]
                )
                loss = loss + w["mlm_kl_weight"] * kl
            if w["mlm_ce_weight"] > 0:
                loss = loss + w["mlm_ce_weight"] * F.cross_entropy(masked, batch["mask_labels"])
        return loss + self.hidden(out.hidden_states, batch)
