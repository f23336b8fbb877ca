"""The distillation losses the objectives combine: temperature-softened KL and cross-entropy
(Hinton et al.), top-k KL with the tail mass kept, hidden-state cosine or MSE, self-attention-
style relations (MiniLMv2), and which student layer matches which cached teacher layer."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


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


def layer_map(teacher_layers: list[int], teacher_depth: int, student_depth: int) -> list[int]:
    """The student hidden state matched to each cached teacher layer (0 = embeddings)."""
    return [round(layer * student_depth / teacher_depth) for layer in teacher_layers]
