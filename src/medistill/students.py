"""Student models cut from a teacher: fewer encoder layers, hidden size kept (DistilBERT-style).

The student starts from the (fine-tuned) teacher's own weights, so it begins close to the
teacher and distillation only has to repair what the removed layers did.
"""

from __future__ import annotations

import copy

import numpy as np
from torch import nn


def select_layers(teacher_layers: int, student_layers: int, strategy: str = "uniform") -> list[int]:
    """Teacher layer indices to keep; `uniform` spreads them from the first to the last layer."""
    if not 1 <= student_layers <= teacher_layers:
        raise ValueError(f"a student needs 1 to {teacher_layers} layers, not {student_layers}")
    if strategy == "first":
        return list(range(student_layers))
    if strategy == "last":
        return list(range(teacher_layers - student_layers, teacher_layers))
    if strategy == "uniform":
        return [int(round(x)) for x in np.linspace(0, teacher_layers - 1, student_layers)]
    raise ValueError(f"unknown layer selection '{strategy}'; use uniform, first or last")


def _layer_list(model) -> nn.ModuleList:
    encoder = getattr(model.base_model, "encoder", model.base_model)
    for name in ("layer", "layers"):
        if isinstance(getattr(encoder, name, None), nn.ModuleList):
            return encoder, name
    raise TypeError(f"{type(model).__name__}: no encoder layer list found to select layers from")


def make_student(teacher, layers: int, strategy: str = "uniform", size_name: str = ""):
    """A copy of `teacher` keeping `layers` of its encoder layers; the spec goes in its config."""
    student = copy.deepcopy(teacher)
    encoder, name = _layer_list(student)
    kept = select_layers(len(getattr(encoder, name)), layers, strategy)
    setattr(encoder, name, nn.ModuleList(getattr(encoder, name)[i] for i in kept))
    student.config.num_hidden_layers = layers
    student.config.medistill_student = {
        "size": size_name,
        "layers": layers,
        "layer_selection": strategy,
        "teacher_layers_kept": kept,
        "hidden_size": student.config.hidden_size,
    }
    return student


def count_parameters(model) -> dict[str, int]:
    """Total parameters, and those outside the embedding block (what layer cuts reduce)."""
    total = sum(p.numel() for p in model.parameters())
    embeddings = getattr(model.base_model, "embeddings", None)
    embedding = sum(p.numel() for p in embeddings.parameters()) if embeddings is not None else 0
    return {"params_total": total, "params_non_embedding": total - embedding}
