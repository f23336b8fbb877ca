import pytest
import torch
from transformers import (
    AutoModel,
    AutoModelForMaskedLM,
    AutoModelForTokenClassification,
    AutoTokenizer,
)

from medistill.models.students import (
    count_parameters,
    make_student,
    select_layers,
    validate_student_spec,
)

# Real clinical French, for properties that random token ids would not show.
SENTENCES = [
    "Patiente de 63 ans, diabétique de type 2, hospitalisée pour une dyspnée d'effort.",
    "L'échographie cardiaque montre une fraction d'éjection ventriculaire gauche à 35 %.",
    "Un traitement par furosémide et bisoprolol est introduit, avec une bonne tolérance.",
    "Absence de fièvre ; la CRP est à 12 mg/L et la créatinine à 98 µmol/L.",
    "Le scanner thoracique retrouve un nodule pulmonaire de 8 mm du lobe supérieur droit.",
    "Antécédents : hypertension artérielle, tabagisme sevré, appendicectomie dans l'enfance.",
]
# A narrower student of the tiny teacher (32 wide, 2 heads of 16, 64 feed-forward units).
NARROW = {"layers": 2, "hidden_size": 16, "heads": 1, "intermediate_size": 32}


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


@pytest.fixture()
def tiny_classifier(tiny_bert):
    torch.manual_seed(0)
    return AutoModelForTokenClassification.from_pretrained(tiny_bert, num_labels=3).eval()


@pytest.fixture()
def batch(tiny_bert):
    return AutoTokenizer.from_pretrained(tiny_bert)(SENTENCES, padding=True, return_tensors="pt")


def test_student_copies_selected_teacher_layers(tiny_classifier):
    teacher = tiny_classifier
    student = make_student(teacher, {"layers": 2}, "L2")
    assert len(student.bert.encoder.layer) == 2
    assert student.config.num_hidden_layers == 2
    assert student.config.medistill_student == {
        "size": "L2",
        "layers": 2,
        "layer_selection": "uniform",
        "teacher_layers_kept": [0, 3],
        "hidden_size": 32,
        "heads": 2,
        "intermediate_size": 64,
        "init": "teacher",
    }
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


def test_explicit_layer_selection_keeps_those_layers(tiny_classifier):
    student = make_student(tiny_classifier, {"layers": 2, "layer_selection": [2, 1]}, "L2")
    assert student.config.medistill_student["teacher_layers_kept"] == [2, 1]
    for mine, index in zip(student.bert.encoder.layer, (2, 1), strict=True):
        theirs = tiny_classifier.bert.encoder.layer[index]
        assert torch.equal(mine.output.dense.weight, theirs.output.dense.weight)


@pytest.mark.parametrize(
    "spec",
    [{"layers": 1}, {**NARROW, "init": "svd"}, {**NARROW, "init": "random"}],
    ids=["teacher", "svd", "random"],
)
def test_each_init_runs_and_round_trips(tiny_classifier, batch, spec, tmp_path):
    student = make_student(tiny_classifier, spec, "S").eval()
    with torch.no_grad():
        logits = student(**batch).logits
    assert logits.shape == (*batch["input_ids"].shape, 3) and torch.isfinite(logits).all()
    student.save_pretrained(tmp_path)
    reloaded = AutoModelForTokenClassification.from_pretrained(tmp_path).eval()
    assert reloaded.config.medistill_student == student.config.medistill_student
    assert reloaded.config.hidden_size == student.config.medistill_student["hidden_size"]
    with torch.no_grad():
        assert torch.equal(reloaded(**batch).logits, logits)


def test_narrow_student_records_shape_and_counts_its_parameters(tiny_classifier):
    student = make_student(tiny_classifier, {"layers": 2, "hidden_size": 16, "init": "svd"})
    spec = student.config.medistill_student
    # defaults: the teacher's head size (16) is kept, the feed-forward ratio (x2) too
    assert (spec["heads"], spec["intermediate_size"], spec["teacher_layers_kept"]) == (
        1,
        32,
        [0, 3],
    )
    params = count_parameters(student)
    assert params["params_total"] == sum(p.numel() for p in student.parameters())
    assert params["params_total"] < count_parameters(tiny_classifier)["params_total"] / 1.9


def test_random_student_is_reproducible_and_ignores_teacher_weights(tiny_classifier, batch):
    spec = {**NARROW, "init": "random"}
    torch.manual_seed(123)  # the caller's random state does not matter
    first = make_student(tiny_classifier, spec).eval()
    second = make_student(tiny_classifier, spec).eval()
    assert first.config.medistill_student["teacher_layers_kept"] == []
    with torch.no_grad():
        assert torch.equal(first(**batch).logits, second(**batch).logits)


@pytest.mark.parametrize(
    "auto_class", [AutoModelForTokenClassification, AutoModelForMaskedLM, AutoModel]
)
def test_svd_at_the_teachers_width_reproduces_the_teacher(tiny_bert, batch, auto_class):
    """Same width: the projection is the identity and every head is refactored exactly, so
    only the layer selection separates student and teacher."""
    torch.manual_seed(0)
    teacher = auto_class.from_pretrained(tiny_bert).eval()
    with torch.no_grad():  # fresh BERT weights have zero biases and unit gains: make them not
        for parameter in teacher.parameters():
            parameter.add_(0.1 * torch.randn_like(parameter))
    student = make_student(teacher, {"layers": 4, "init": "svd"}).eval()
    with torch.no_grad():
        theirs, mine = teacher(**batch), student(**batch)
    for name in ("logits", "last_hidden_state", "pooler_output"):
        if name in theirs:
            assert torch.allclose(mine[name], theirs[name], atol=1e-4), name


def test_svd_narrows_a_masked_lm_with_its_decoder_tied(tiny_bert, batch):
    teacher = AutoModelForMaskedLM.from_pretrained(tiny_bert).eval()
    student = make_student(teacher, {**NARROW, "init": "svd"}).eval()
    decoder = student.cls.predictions.decoder.weight
    assert decoder.shape == (teacher.config.vocab_size, 16)
    assert decoder.data_ptr() == student.bert.embeddings.word_embeddings.weight.data_ptr()
    with torch.no_grad():
        assert torch.isfinite(student(**batch).logits).all()


def _linear_cka(x: torch.Tensor, y: torch.Tensor) -> float:
    """Linear centred kernel alignment of two sets of token vectors: 1 when they are the same
    up to rotation and scale, whatever their widths."""
    x, y = x - x.mean(0), y - y.mean(0)
    return ((x.T @ y).norm() ** 2 / ((x.T @ x).norm() * (y.T @ y).norm())).item()


def test_svd_narrow_student_starts_closer_to_the_teacher_than_random(minilm_path):
    """MiniLM at half width: the svd student's last hidden states resemble the teacher's far
    more than a random student's (measured: linear CKA 0.56 against 0.29)."""
    torch.manual_seed(0)
    teacher = AutoModelForTokenClassification.from_pretrained(minilm_path, num_labels=5).eval()
    batch = AutoTokenizer.from_pretrained(minilm_path)(SENTENCES, padding=True, return_tensors="pt")
    tokens = batch["attention_mask"].bool()
    spec = {"layers": 6, "hidden_size": 192}
    similarity = {}
    with torch.no_grad():
        theirs = teacher.bert(**batch).last_hidden_state[tokens]
        for init in ("svd", "random"):
            student = make_student(teacher, {**spec, "init": init}).eval()
            mine = student.bert(**batch).last_hidden_state[tokens]
            similarity[init] = _linear_cka(theirs, mine)
    assert student.config.medistill_student["heads"] == 6
    assert similarity["svd"] > 0.45
    assert similarity["svd"] > 1.5 * similarity["random"], similarity


TEACHER_CONFIG = {
    "hidden_size": 32,
    "num_attention_heads": 2,
    "num_hidden_layers": 4,
    "intermediate_size": 64,
}


@pytest.mark.parametrize(
    ("spec", "key"),
    [
        ({"layers": 0}, "layers"),
        ({"layers": 2, "init": "distil"}, "init"),
        ({"layers": 2, "hidden_size": 24, "heads": 5, "init": "random"}, "heads"),
        ({"layers": 5}, "layers"),
        ({"layers": 5, "init": "svd", "hidden_size": 16}, "layers"),
        ({"layers": 2, "layer_selection": [0, 4]}, "layer_selection"),
        ({"layers": 2, "layer_selection": [1, 1]}, "layer_selection"),
        ({"layers": 2, "layer_selection": [0, 1, 2]}, "layer_selection"),
        ({"layers": 2, "layer_selection": "middle"}, "layer_selection"),
        ({"layers": 2, "hidden_size": 64, "init": "svd"}, "hidden_size"),
        ({"layers": 2, "hidden_size": 64}, "hidden_size"),
        ({"layers": 2, "hidden_size": 16}, "hidden_size"),
        ({"layers": 2, "intermediate_size": 0, "init": "random"}, "intermediate_size"),
        ({"layers": 2, "intermediate_size": 128, "init": "svd"}, "intermediate_size"),
        ({"layers": 2, "heads": 4, "init": "svd"}, "heads"),
        ({"layers": 2, "hidden_size": 32, "heads": 1, "init": "svd"}, "heads"),
    ],
)
def test_validate_student_spec_names_the_offending_key(spec, key):
    problems = validate_student_spec(spec, TEACHER_CONFIG)
    assert problems and any(f"`{key}`" in problem for problem in problems), problems


@pytest.mark.parametrize(
    "spec",
    [
        {"layers": 4},
        {"layers": 2, "layer_selection": [3, 0]},
        {"layers": 3, "hidden_size": 16, "init": "svd"},
        {"layers": 12, "hidden_size": 48, "heads": 3, "init": "random"},
    ],
)
def test_validate_student_spec_accepts_buildable_specs(spec):
    assert validate_student_spec(spec, TEACHER_CONFIG) == []


def test_make_student_refuses_an_impossible_spec(tiny_classifier):
    with pytest.raises(ValueError, match="`hidden_size` 16 differs"):
        make_student(tiny_classifier, {"layers": 2, "hidden_size": 16}, "bad")
