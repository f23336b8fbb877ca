import pytest
import torch
from transformers import AutoModelForTokenClassification

from medistill.students import count_parameters, make_student, select_layers


@pytest.mark.parametrize(
    ("teacher", "student", "strategy", "expected"),
    [
        (6, 1, "uniform", [0]),
        (6, 2, "uniform", [0, 5]),
        (6, 3, "uniform", [0, 2, 5]),
        (12, 6, "uniform", [0, 2, 4, 7, 9, 11]),
        (6, 2, "first", [0, 1]),
        (6, 2, "last", [4, 5]),
        (4, 4, "uniform", [0, 1, 2, 3]),
    ],
)
def test_select_layers(teacher, student, strategy, expected):
    assert select_layers(teacher, student, strategy) == expected


def test_select_layers_rejects_bad_sizes():
    with pytest.raises(ValueError, match="1 to 6"):
        select_layers(6, 0)
    with pytest.raises(ValueError, match="1 to 6"):
        select_layers(6, 7)


def test_student_copies_selected_teacher_layers(tiny_bert):
    teacher = AutoModelForTokenClassification.from_pretrained(tiny_bert, num_labels=3)
    student = make_student(teacher, 2, "uniform", "L2")
    assert len(student.bert.encoder.layer) == 2
    assert student.config.num_hidden_layers == 2
    assert student.config.medistill_student["teacher_layers_kept"] == [0, 3]
    for mine, theirs in zip(
        student.bert.encoder.layer, [teacher.bert.encoder.layer[i] for i in (0, 3)], strict=True
    ):
        for p, q in zip(mine.parameters(), theirs.parameters(), strict=True):
            assert torch.equal(p, q) and p is not q
    assert len(teacher.bert.encoder.layer) == 4  # the teacher is untouched
    params = count_parameters(student)
    assert params["params_non_embedding"] < count_parameters(teacher)["params_non_embedding"]
    assert params["params_total"] - params["params_non_embedding"] == sum(
        p.numel() for p in student.bert.embeddings.parameters()
    )


def test_student_round_trips_through_save_pretrained(tiny_bert, tmp_path):
    teacher = AutoModelForTokenClassification.from_pretrained(tiny_bert, num_labels=3)
    student = make_student(teacher, 1, "uniform", "L1")
    student.save_pretrained(tmp_path)
    reloaded = AutoModelForTokenClassification.from_pretrained(tmp_path)
    assert reloaded.config.num_hidden_layers == 1
    assert reloaded.config.medistill_student["size"] == "L1"
    ids = torch.tensor([[101, 2000, 102]])
    student.eval()
    assert torch.allclose(student(input_ids=ids).logits, reloaded(input_ids=ids).logits, atol=1e-6)
