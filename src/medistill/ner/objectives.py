"""The NER family's distillation objectives: what a student is trained to match, one per mode.

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

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from medistill.core.encoding import collate
from medistill.training.losses import (
    distillation_loss,
    hidden_state_loss,
    layer_map,
    relation_loss,
    topk_kl,
)


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
