"""Distillation objectives: top-k KL with tail mass, hidden-state and relation transfer."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from transformers import BertConfig, BertForMaskedLM, BertForTokenClassification

from medistill.ner.objectives import GeneralObjective, TaskObjective
from medistill.training.loop import train
from medistill.training.losses import hidden_state_loss, layer_map, relation_loss, topk_kl


def _cached_topk(teacher_logits, k):
    values, ids = teacher_logits.topk(k, dim=-1)
    rest = teacher_logits.scatter(1, ids, float("-inf"))
    return ids, values, torch.logsumexp(rest, dim=-1)


def test_topk_kl_keeps_the_tail_mass():
    torch.manual_seed(0)
    teacher = torch.randn(6, 50) * 3
    ids, values, tail = _cached_topk(teacher, 5)
    assert topk_kl(teacher.clone(), ids, values, tail).item() == pytest.approx(0.0, abs=1e-5)
    # With every token in the top k, the tail is empty and the loss is the full KL.
    student = torch.randn(6, 50)
    full = F.kl_div(
        F.log_softmax(student, -1),
        F.log_softmax(teacher, -1),
        log_target=True,
        reduction="batchmean",
    )
    ids_all, values_all, _ = _cached_topk(teacher, 50)
    empty_tail = torch.full((6,), -1e4)
    assert topk_kl(student, ids_all, values_all, empty_tail).item() == pytest.approx(
        full.item(), rel=1e-4
    )
    # A student matching the teacher's top k but with the wrong tail mass is penalised, which a
    # renormalised top-k target would not see.
    wrong_tail = teacher.clone()
    wrong_tail.scatter_(1, ids, values + 2.0)
    assert topk_kl(wrong_tail, ids, values, tail).item() > 1e-3


def test_hidden_and_relation_losses():
    torch.manual_seed(0)
    states = torch.randn(2, 7, 16)
    mask = torch.tensor([[1] * 7, [1] * 4 + [0] * 3])
    assert hidden_state_loss(states, states, mask.bool()).item() == pytest.approx(0, abs=1e-6)
    assert hidden_state_loss(states, -states, mask.bool()).item() == pytest.approx(2, abs=1e-5)
    assert relation_loss(states, states, mask, heads=4).item() == pytest.approx(0, abs=1e-6)
    narrow = torch.randn(2, 7, 8)  # relations compare models of different widths
    assert relation_loss(narrow, states, mask, heads=4).item() > 0
    # Padding never changes the loss of the real tokens.
    padded = states.clone()
    padded[1, 4:] = 100.0
    assert relation_loss(narrow, padded, mask, heads=4).item() == pytest.approx(
        relation_loss(narrow, states, mask, heads=4).item(), rel=1e-5
    )


def test_task_objective_adds_the_teachers_hidden_states():
    """Intermediate-layer transfer in task mode: the hidden term is added to KL + CE, reaches
    the projection (student 16 wide, teacher 32), and weights of 0 leave the loss unchanged."""
    torch.manual_seed(0)
    config = _tiny_config(
        num_labels=3,
        hidden_dropout_prob=0.0,  # the same forward pass with and without the hidden term
        attention_probs_dropout_prob=0.0,
    )
    student = BertForTokenClassification(config)
    rng = np.random.default_rng(0)
    examples = [
        {
            "input_ids": [1, *rng.integers(3, 40, size=n).tolist(), 2],
            "word_index": [-1, *range(n), -1],
            "gold": [0] * n,
            "teacher": rng.normal(size=(n, 3)).astype(np.float32),
            "hidden": {"2": rng.normal(size=(n + 2, 32)).astype(np.float32)},
        }
        for n in (4, 7)
    ]
    batch = TaskObjective.make_batch(examples, pad_id=0)
    assert batch["hidden_2"].shape == (2, 9, 32) and (batch["hidden_2"][0, 6:] == 0).all()
    dims = {"student_width": 16, "student_depth": 1, "teacher_width": 32, "teacher_depth": 2}
    dims |= {"hidden_layers": [2]}
    weights = {"temperature": 2.0, "kl_weight": 1.0, "ce_weight": 0.5}
    off = {"hidden_weight": 0.0, "hidden_loss": "cosine", "relation_weight": 0.0}
    off |= {"relation_heads": 4}
    plain = TaskObjective(**weights)(student, batch)
    silent = TaskObjective(**weights, intermediate=off, **dims)(student, batch)
    assert silent.item() == pytest.approx(plain.item(), abs=1e-6)
    on = off | {"hidden_weight": 1.0, "relation_weight": 0.5}
    objective = TaskObjective(**weights, intermediate=on, **dims)
    loss = objective(student, batch)
    assert loss.item() > plain.item()
    loss.backward()
    assert objective.hidden.projection.weight.grad.abs().sum() > 0
    assert student.bert.encoder.layer[0].output.dense.weight.grad.abs().sum() > 0


def test_layer_map():
    assert layer_map([12], 12, 2) == [2]
    assert layer_map([0, 6, 12], 12, 3) == [0, 2, 3]


WEIGHTS = {
    "mlm_kl_weight": 1.0,
    "mlm_ce_weight": 0.5,
    "hidden_weight": 1.0,
    "hidden_loss": "cosine",
    "relation_weight": 1.0,
    "relation_heads": 4,
}
RECIPE = {
    "steps": 6,
    "batch_size": 2,
    "grad_accumulation": 2,
    "learning_rate": 1e-3,
    "warmup_ratio": 0.0,
    "weight_decay": 0.0,
    "max_grad_norm": 1.0,
    "checkpoint_every": 3,
}


def _records(n=12, vocab=40, width=32, k=8):
    rng = np.random.default_rng(0)
    records = []
    for _ in range(n):
        length = int(rng.integers(5, 10))
        ids = rng.integers(5, vocab, length)
        positions = np.array([1, length - 2])
        logits = rng.normal(size=(2, vocab)).astype(np.float32) * 3
        top = np.argsort(-logits, axis=1)[:, :k]
        rest = logits.copy()
        np.put_along_axis(rest, top, -np.inf, axis=1)
        records.append(
            {
                "input_ids": ids,
                "mask_positions": positions,
                "mask_labels": ids[positions],
                "topk_ids": top,
                "topk_logits": np.take_along_axis(logits, top, axis=1),
                "tail_logsumexp": np.log(np.exp(rest).sum(1)).astype(np.float32),
                "hidden": {"2": rng.normal(size=(length, width)).astype(np.float32)},
            }
        )
    return records


def _tiny_config(**overrides) -> BertConfig:
    """A one-layer, 16-wide BERT over a 40-token vocabulary."""
    shape = {"vocab_size": 40, "hidden_size": 16, "num_hidden_layers": 1}
    shape |= {"num_attention_heads": 2, "intermediate_size": 32}
    return BertConfig(**shape, **overrides)


def _student():
    torch.manual_seed(0)
    config = _tiny_config(max_position_embeddings=32)
    return BertForMaskedLM(config)


def _objective():
    torch.manual_seed(1)
    return GeneralObjective(
        WEIGHTS,
        student_width=16,
        student_depth=1,
        teacher_width=32,
        teacher_depth=2,
        hidden_layers=[2],
    )


def _train(model, objective, checkpoint, on_log=None):
    return train(
        model,
        _records(),
        RECIPE,
        objective=objective,
        pad_id=0,
        seed=0,
        device="cpu",
        checkpoint=checkpoint,
        fingerprint="general",
        desc="test",
        log_every=1,
        on_log=on_log,
    )


def test_general_objective_resumes_exactly_with_its_projection(tmp_path):
    """A narrower student, gradient accumulation and a learned projection, killed and resumed."""
    straight, straight_objective = _student(), _objective()
    history = _train(straight, straight_objective, tmp_path / "a.pt")
    assert all(np.isfinite(point["loss"]) for point in history)

    def kill(step, loss):
        if step == 4:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        _train(_student(), _objective(), tmp_path / "b.pt", on_log=kill)
    resumed, resumed_objective = _student(), _objective()
    _train(resumed, resumed_objective, tmp_path / "b.pt")
    for p, q in zip(straight.parameters(), resumed.parameters(), strict=True):
        assert torch.allclose(p, q, atol=1e-6)
    assert torch.allclose(
        straight_objective.hidden.projection.weight,
        resumed_objective.hidden.projection.weight,
        atol=1e-6,
    )
