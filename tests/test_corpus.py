"""Synthetic corpus: determinism, gold spans, held-out vocabulary, sentence splitting, I/O."""

from __future__ import annotations

import json

import pytest

from medistill.core.io import atomic_write, read_json, read_jsonl, write_json, write_jsonl
from medistill.data.lexicons import LABELS, Lexicons, load_lexicons
from medistill.data.sentences import split_sentences
from medistill.data.synthetic import generate_reports


@pytest.fixture(scope="module")
def lexicons() -> Lexicons:
    return load_lexicons()


@pytest.fixture(scope="module")
def train_docs(lexicons) -> list[dict]:
    return generate_reports(200, seed=7, lexicons=lexicons)


@pytest.fixture(scope="module")
def test_docs(lexicons) -> list[dict]:
    return generate_reports(300, seed=7, vocabulary="test", lexicons=lexicons)


def _term(surface: str) -> str:
    """Undo the capitalisation of a mention at the start of a sentence."""
    return surface[0].lower() + surface[1:]


def _in(surface: str, terms: set[str]) -> bool:
    return surface in terms or _term(surface) in terms


def test_lexicons_are_split_disjoint_and_sizeable(lexicons):
    assert set(lexicons.train) == set(LABELS) == set(lexicons.heldout)
    minimum = {"DISO": 500, "CHEM": 300, "SOSY": 50, "ANAT": 60, "PROC": 60}
    for label in LABELS:
        train, heldout = lexicons.train[label], lexicons.heldout[label]
        assert train == sorted(train) and heldout == sorted(heldout)
        assert not set(train) & set(heldout)
        assert len(train) + len(heldout) >= minimum[label]
        assert 0.1 < len(heldout) / (len(train) + len(heldout)) < 0.35
    all_terms = [
        t for part in (lexicons.train, lexicons.heldout) for ts in part.values() for t in ts
    ]
    assert len(all_terms) == len(set(all_terms)), "a term belongs to one label only"
    assert "paracétamol" in lexicons.train["CHEM"] + lexicons.heldout["CHEM"]
    assert "HTA" in lexicons.train["DISO"] + lexicons.heldout["DISO"]
    assert load_lexicons() is lexicons is load_lexicons(0.2)  # cached


def test_heldout_split_is_stable_across_fractions():
    small, large = load_lexicons(0.1), load_lexicons(0.3)
    for label in LABELS:
        assert set(small.heldout[label]) <= set(large.heldout[label])


def test_deterministic(lexicons):
    a = generate_reports(20, seed=3, lexicons=lexicons)
    b = generate_reports(20, seed=3)
    assert a == b
    c = generate_reports(20, seed=4, lexicons=lexicons)
    assert [d["text"] for d in a] != [d["text"] for d in c]
    # A larger corpus extends a smaller one; the test vocabulary gives other documents.
    assert generate_reports(5, seed=3, lexicons=lexicons) == a[:5]
    t = generate_reports(20, seed=3, vocabulary="test", lexicons=lexicons)
    assert [d["text"] for d in a] != [d["text"] for d in t]


def test_document_format(train_docs):
    assert [d["id"] for d in train_docs[:2]] == ["synth-000000", "synth-000001"]
    other = generate_reports(1, seed=7, id_prefix="dev")
    assert other[0]["id"] == "dev-000000"
    for doc in train_docs:
        assert set(doc) == {"id", "text", "entities", "source", "licence"}
        assert doc["source"] == "synthetic"
        assert doc["licence"] == "BSD-3-Clause AND Apache-2.0"
        json.dumps(doc)  # serialisable


def test_spans_match_and_do_not_overlap(train_docs, test_docs, lexicons):
    all_terms = {
        label: set(lexicons.train[label]) | set(lexicons.heldout[label]) for label in LABELS
    }
    for doc in train_docs + test_docs:
        text, previous_end = doc["text"], 0
        for entity in doc["entities"]:
            assert set(entity) == {"start", "end", "label", "novel"}
            assert entity["label"] in LABELS
            assert previous_end <= entity["start"] < entity["end"] <= len(text)
            surface = text[entity["start"] : entity["end"]]
            assert surface == surface.strip()
            assert _in(surface, all_terms[entity["label"]]), surface
            # Mentions start and end on word boundaries.
            assert entity["start"] == 0 or not text[entity["start"] - 1].isalnum()
            assert entity["end"] == len(text) or not text[entity["end"]].isalnum()
            previous_end = entity["end"]


def test_all_labels_and_report_shape(train_docs):
    counts = {label: 0 for label in LABELS}
    for doc in train_docs:
        for entity in doc["entities"]:
            counts[entity["label"]] += 1
    assert all(counts[label] > 0 for label in LABELS), counts
    assert min(counts["DISO"], counts["CHEM"]) > max(counts["ANAT"], counts["PROC"])
    n_entities = sorted(len(d["entities"]) for d in train_docs)
    n_sentences = sorted(len(split_sentences(d["text"])) for d in train_docs)
    assert 5 <= n_entities[len(n_entities) // 2] <= 25
    assert 8 <= n_sentences[len(n_sentences) // 2] <= 20
    assert n_entities[int(0.95 * len(n_entities))] <= 25
    texts = "\n".join(d["text"] for d in train_docs)
    for marker in ("Motif", "Conclusion", " mg", "/20", "Pas de ", "\n"):
        assert marker in texts or marker.upper() in texts, marker


def test_heldout_terms_only_in_test_vocabulary(train_docs, test_docs, lexicons):
    heldout = {label: set(lexicons.heldout[label]) for label in LABELS}
    train = {label: set(lexicons.train[label]) for label in LABELS}
    for doc in train_docs:
        for entity in doc["entities"]:
            surface = doc["text"][entity["start"] : entity["end"]]
            assert entity["novel"] is False
            assert not _in(surface, heldout[entity["label"]]), surface
    novel = 0
    seen_labels = set()
    for doc in test_docs:
        for entity in doc["entities"]:
            surface = doc["text"][entity["start"] : entity["end"]]
            expected = heldout if entity["novel"] else train
            assert _in(surface, expected[entity["label"]]), surface
            if entity["novel"]:
                novel += 1
                seen_labels.add(entity["label"])
    total = sum(len(d["entities"]) for d in test_docs)
    assert 0.3 < novel / total < 0.6
    assert seen_labels == set(LABELS)


def test_custom_lexicons_and_bad_vocabulary():
    tiny = Lexicons(
        train={label: [f"{label.lower()}un"] for label in LABELS},
        heldout={label: [f"{label.lower()}deux"] for label in LABELS},
    )
    docs = generate_reports(10, seed=0, vocabulary="test", lexicons=tiny)
    surfaces = {_term(d["text"][e["start"] : e["end"]]) for d in docs for e in d["entities"]}
    assert surfaces <= {
        t for part in (tiny.train, tiny.heldout) for ts in part.values() for t in ts
    }
    with pytest.raises(ValueError):
        generate_reports(1, seed=0, vocabulary="dev")


def _sentences(text: str) -> list[str]:
    return [text[a:b] for a, b in split_sentences(text)]


def test_split_sentences_tricky_french():
    text = (
        "Vu par le Dr. Martin le 12.03.2024. Prescrire 2.5 mg. de X, cf. annexe. "
        "Pas de fièvre ! Suite"
    )
    assert _sentences(text) == [
        "Vu par le Dr. Martin le 12.03.2024.",
        "Prescrire 2.5 mg. de X, cf. annexe.",
        "Pas de fièvre !",
        "Suite",
    ]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Vu par M. Durand et Mme. Petit. Fin", ["Vu par M. Durand et Mme. Petit.", "Fin"]),
        ("Antalgiques, p. ex. Doliprane. Bien.", ["Antalgiques, p. ex. Doliprane.", "Bien."]),
        ("Toux, fièvre, etc. puis dyspnée. Fin", ["Toux, fièvre, etc. puis dyspnée.", "Fin"]),
        ("Toux, fièvre, etc. Fin ?", ["Toux, fièvre, etc.", "Fin ?"]),
        ("Titre\n\n  Ligne une.  Ligne deux  \n", ["Titre", "Ligne une.", "Ligne deux"]),
        (
            "Créatinine 1.25 mg/L. Revu par le Pr. Roux.",
            ["Créatinine 1.25 mg/L.", "Revu par le Pr. Roux."],
        ),
        ("Il dit « non. » Puis sort... Bien", ["Il dit « non. »", "Puis sort...", "Bien"]),
        ("", []),
        ("  \n ", []),
        ("Voir cf. Annexe 2. Fin", ["Voir cf. Annexe 2.", "Fin"]),
        ("Décrit par Roux et al. Ils concluent.", ["Décrit par Roux et al. Ils concluent."]),
        ("Montré sur la fig. 2 ici. Puis", ["Montré sur la fig. 2 ici.", "Puis"]),
        ("Dose 500 mg. Le patient va bien.", ["Dose 500 mg.", "Le patient va bien."]),
        ("Né le 03.12.1950, vu le 1.2.2024. Fin", ["Né le 03.12.1950, vu le 1.2.2024.", "Fin"]),
    ],
)
def test_split_sentences_cases(text, expected):
    assert _sentences(text) == expected


def test_split_sentences_on_reports(train_docs):
    for doc in train_docs[:50]:
        spans = split_sentences(doc["text"])
        assert all(a < b for a, b in spans)
        assert all(spans[i][1] <= spans[i + 1][0] for i in range(len(spans) - 1))
        # No entity is cut by a sentence boundary.
        for entity in doc["entities"]:
            assert any(a <= entity["start"] and entity["end"] <= b for a, b in spans)


def test_jsonl_round_trip(tmp_path, train_docs):
    path = tmp_path / "sub" / "docs.jsonl"
    write_jsonl(train_docs[:10], path)
    assert read_jsonl(path) == train_docs[:10]
    assert "é" in path.read_text(encoding="utf-8")  # UTF-8, not \u escapes
    assert [p.name for p in path.parent.iterdir()] == ["docs.jsonl"]


def test_failed_write_keeps_previous_file(tmp_path, train_docs):
    path = tmp_path / "docs.jsonl"
    write_jsonl(train_docs[:3], path)
    before = path.read_bytes()

    def broken():
        yield train_docs[3]
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        write_jsonl(broken(), path)
    assert path.read_bytes() == before
    with pytest.raises(KeyError):
        with atomic_write(path) as handle:
            handle.write("partial")
            raise KeyError("boom")
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["docs.jsonl"]  # no temporary file left


def test_json_helpers(tmp_path):
    path = tmp_path / "a.json"
    write_json({"clé": [1, 2]}, path)
    assert read_json(path) == {"clé": [1, 2]}
    assert "clé" in path.read_text(encoding="utf-8")


def test_split_sentences_on_one_long_line():
    # 450 kB on one line: seconds when the splitter is linear, many minutes when quadratic.
    text = "Le patient va bien, cf. dossier, dose 2.5 mg. " * 10000
    assert len(split_sentences(text)) == 10000


def test_build_corpus_from_synthetic_source(tmp_path):
    from medistill.data.corpus import build_corpus

    spec = {"sources": [{"kind": "synthetic", "n_docs": 20, "seed": 3}]}
    stats = build_corpus(spec, tmp_path / "docs.jsonl", tmp_path / "build_stats.json")
    docs = read_jsonl(tmp_path / "docs.jsonl")
    assert [d["text"] for d in docs] == [d["text"] for d in generate_reports(20, seed=3)]
    assert (
        docs[0]["source"] == "synthetic-0" and docs[0]["licence"] == "BSD-3-Clause AND Apache-2.0"
    )
    assert stats["n_docs"] == 20 and stats["n_entities"] > 100 and stats["dedup_removed"] == 0
    assert {"n_sentences", "n_tokens", "sources"} <= set(stats)
    assert stats["sources"]["synthetic-0"]["licence"] == "BSD-3-Clause AND Apache-2.0"
    assert read_json(tmp_path / "build_stats.json") == stats
