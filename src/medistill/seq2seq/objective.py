"""What an encoder-decoder student is trained to match (`Seq2SeqObjective`)."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn
from transformers.modeling_outputs import BaseModelOutput

from medistill.seq2seq.model import collate_pairs
from medistill.training.losses import topk_kl


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
