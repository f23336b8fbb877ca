"""Silver tags as a teacher signal: one-hot word logits whose softmax, at the distillation
temperatures, is the tagger's tag."""

from __future__ import annotations

import numpy as np
import torch

from medistill.generative.silver_labels import one_hot_logits


def test_silver_tags_become_logits_whose_softmax_is_the_tag():
    labels = ["O", "B-DISO", "I-DISO", "B-CHEM", "I-CHEM"]
    tags = [["B-DISO", "I-DISO", "O"], ["B-CHEM"]]
    logits = one_hot_logits(tags, labels).astype(np.float16)  # as cached
    assert logits.shape == (4, 5)
    assert [labels[i] for i in logits.argmax(-1)] == ["B-DISO", "I-DISO", "O", "B-CHEM"]
    for temperature in (1.0, 2.0, 4.0):
        probs = torch.softmax(torch.from_numpy(logits.astype(np.float32)) / temperature, -1)
        assert probs.max(-1).values.min() > 1 - 1e-5
