"""What a fine-tuned causal LM tagger is trained on (`CausalAnswerObjective`)."""

from __future__ import annotations

import torch.nn.functional as F
from torch import nn

from medistill.seq2seq.model import collate_pairs


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
