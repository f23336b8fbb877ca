"""Property tests: every augmentation operation keeps tokens, labels and spans aligned on random
documents; measured rates are within 20% of the configured ones."""

from __future__ import annotations

import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from medistill.data.augment import Augmenter, load_abbreviations
from medistill.data.spans import WORD, _tags
from medistill.data.synthetic import generate_reports

LEXICON = load_abbreviations()
WORDS = st.sampled_from(
    [
        "patient", "fièvre", "Toux", "HTA", "traitement", "hypertension artérielle", "ECG",
        "insuffisance cardiaque", "40", "mg", "l'aorte", "ATCD", "É", "a", "cœur", "d'IDM",
        "pneumopathie", "Antécédents", "électrocardiogramme", "ttt", "TA", "x",
    ]
)  # fmt: skip
PUNCT = st.sampled_from([" ", " ", ", ", ". ", " : ", "\n", " (", ") ", " de ", " d'"])
LABELS = st.sampled_from(["DISO", "SOSY", "CHEM", "ANAT", "PROC"])
OPERATIONS = {
    "typo": {"typo_rate": 0.3},
    "case": {"case_rate": 0.3},
    "abbreviation": {"abbreviation_rate": 0.7},
    "new_concept": {"new_concept_rate": 0.7},
    "all": {"typo_rate": 0.2, "case_rate": 0.1, "abbreviation_rate": 0.5, "new_concept_rate": 0.5},
}


@st.composite
def documents(draw):
    pieces = draw(
        st.lists(
            st.tuples(st.booleans(), st.lists(WORDS, min_size=1, max_size=3), LABELS, PUNCT),
            min_size=1,
            max_size=12,
        )
    )
    text, entities = "", []
    for is_entity, words, label, separator in pieces:
        chunk = " ".join(words)
        if is_entity and WORD.match(chunk[0]) and chunk[-1].isalnum():
            if text and text[-1].isalnum():
                text += " "
            entities.append({"start": len(text), "end": len(text) + len(chunk), "label": label})
        text += chunk + separator
    return {"id": "doc", "text": text, "entities": entities}


def _chunks(doc: dict) -> list[tuple[int, int, str]]:
    """Entity chunks read back from word-level IOB2 tags: (first word, end word, label)."""
    spans = [m.span() for m in WORD.finditer(doc["text"])]
    tags = _tags(spans, doc["entities"])
    chunks = []
    for i, tag in enumerate(tags):
        if tag.startswith("B-"):
            end = i + 1
            while end < len(tags) and tags[end] == f"I-{tag[2:]}":
                end += 1
            chunks.append((i, end, tag[2:]))
    return chunks


def _check_aligned(before: dict, after: dict) -> None:
    text = after["text"]
    assert len(after["entities"]) == len(before["entities"])
    previous_end = 0
    for old, new in zip(before["entities"], after["entities"], strict=True):
        assert new["label"] == old["label"]
        assert previous_end <= new["start"] < new["end"] <= len(text)
        surface = text[new["start"] : new["end"]]
        assert WORD.match(surface) and surface == surface.strip()
        # Mentions start and end on word boundaries: no word is half inside.
        assert new["start"] == 0 or not (text[new["start"] - 1].isalnum())
        assert new["end"] == len(text) or not (text[new["end"]].isalnum())
        previous_end = new["end"]
    # Tokens, labels and spans agree: the word-level tags give back exactly the entities.
    assert [label for *_, label in _chunks(after)] == [e["label"] for e in after["entities"]]


@pytest.mark.parametrize("operation", sorted(OPERATIONS))
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(doc=documents(), seed=st.integers(0, 2**16))
def test_every_operation_keeps_tokens_labels_and_spans_aligned(operation, doc, seed):
    augmenter = Augmenter(**OPERATIONS[operation], abbreviations=LEXICON)
    noisy = augmenter(doc, random.Random(seed), suffix="~n")
    assert noisy["id"] == "doc~n"
    _check_aligned(doc, noisy)
    if operation in ("typo", "case"):  # word-level: same words, same tags
        assert len(WORD.findall(noisy["text"])) == len(WORD.findall(doc["text"]))
        assert _chunks(noisy) == _chunks(doc)
    if operation == "new_concept":
        for old, new in zip(doc["entities"], noisy["entities"], strict=True):
            same = (
                doc["text"][old["start"] : old["end"]] == noisy["text"][new["start"] : new["end"]]
            )
            assert same or new.get("novel") is True


@pytest.fixture(scope="module")
def reports() -> list[dict]:
    return generate_reports(150, seed=11)


@pytest.mark.parametrize(
    ("key", "rate", "measured"),
    [
        ("typo_rate", 0.05, "typo"),
        ("typo_rate", 0.15, "typo"),
        ("case_rate", 0.05, "case"),
        ("abbreviation_rate", 0.3, "abbreviation"),
        ("new_concept_rate", 0.2, "new_concept"),
    ],
)
def test_measured_rates_within_20_percent(reports, key, rate, measured):
    augmenter = Augmenter(**{key: rate}, abbreviations=LEXICON)
    rng = random.Random(5)
    out = [augmenter(doc, rng) for doc in reports]
    got = augmenter.measured_rates()[measured]
    assert abs(got - rate) <= 0.2 * rate, (measured, got)
    if key == "typo_rate":  # the count agrees with an independent word-by-word comparison
        pairs = [
            (a, b)
            for doc, noisy in zip(reports, out, strict=True)
            for a, b in zip(WORD.findall(doc["text"]), WORD.findall(noisy["text"]), strict=True)
        ]
        assert abs(sum(a != b for a, b in pairs) / len(pairs) - got) < 1e-9
    for doc, noisy in zip(reports, out, strict=True):
        _check_aligned(doc, noisy)
