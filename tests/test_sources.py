"""Corpus sources: each kind, licences, normalisation, dedup, mixing, and failures that name the
file and the fix without leaving a partial corpus behind."""

from __future__ import annotations

import gzip
import json

import pytest
from conftest import SHARED_DATA

from medistill.core.errors import CorpusSourceError, CorpusSpecError
from medistill.core.io import read_json
from medistill.data.corpus import build_corpus, collect_documents
from medistill.data.dedup import deduplicate
from medistill.data.normalise import normalise_document, normalise_text

E3C_RAW = SHARED_DATA / "e3c-fr-raw" / "layer3-sample.jsonl.gz"


def _build(tmp_path, spec):
    docs, stats = tmp_path / "out" / "documents.jsonl", tmp_path / "out" / "build_stats.json"
    result = build_corpus(spec, docs, stats, name="test")
    return [json.loads(line) for line in docs.read_text(encoding="utf-8").splitlines()], result


def test_normalise_text():
    text = "L\u2019patient\u00a0a\u202f38\u00a0°C\r\nEt \u200b\u00adla cafe\u0301ine\tok"
    assert normalise_text(text) == "L'patient a 38 °C\nEt la caféine ok"


def test_normalise_document_moves_entity_spans():
    doc = {
        "id": "d",
        "text": "Cafe\u0301ine\u00a0puis l\u2019aspirine\u200b.",
        "entities": [
            {"start": 0, "end": 8, "label": "CHEM"},
            {"start": 16, "end": 24, "label": "X"},
        ],
    }
    out = normalise_document(doc)
    assert out["text"] == "Caféine puis l'aspirine."
    assert [out["text"][e["start"] : e["end"]] for e in out["entities"]] == ["Caféine", "aspirine"]


def test_deduplicate_exact_and_normalised():
    docs = [{"text": t} for t in ("Fièvre, toux.", "Fièvre, toux.", "fievre toux", "Autre.")]
    kept, removed = deduplicate(docs)
    assert [d["text"] for d in kept] == ["Fièvre, toux.", "Autre."]
    assert removed == {"exact": 1, "normalised": 1}
    assert len(deduplicate(docs, "exact")[0]) == 3
    assert len(deduplicate(docs, "none")[0]) == 4


def test_text_sources_files_and_lines_with_licences(tmp_path):
    folder = tmp_path / "notes"
    folder.mkdir()
    (folder / "a.txt").write_text("Patient vu pour HTA.\nSuite normale.", encoding="utf-8")
    (folder / "b.txt").write_text("Toux\u00a0sèche.", encoding="utf-8")
    (folder / "empty.txt").write_text("  \n", encoding="utf-8")
    lines = tmp_path / "lines.txt"
    lines.write_text("Une ligne.\n\nDeux lignes.\nUne ligne.\nx\n", encoding="utf-8")
    spec = {
        "sources": [
            {"kind": "text", "path": str(folder), "licence": "CC0-1.0", "name": "notes"},
            {"kind": "text", "path": str(lines), "licence": "CC-BY-4.0"},
        ],
        "min_chars": 3,
    }
    docs, stats = _build(tmp_path, spec)
    assert [d["text"] for d in docs] == [
        "Patient vu pour HTA.\nSuite normale.",
        "Toux sèche.",
        "Une ligne.",
        "Deux lignes.",
    ]
    assert [d["licence"] for d in docs] == ["CC0-1.0", "CC0-1.0", "CC-BY-4.0", "CC-BY-4.0"]
    assert docs[0]["id"] == "notes:a" and docs[0]["source"] == "notes"
    assert stats["n_docs"] == 4 and stats["n_sentences"] == 5
    assert stats["dedup_removed"] == 1 and stats["dedup_removed_by"]["exact"] == 1
    assert stats["sources"]["notes"]["licence"] == "CC0-1.0"
    assert stats["sources"]["text-1"] | {} == stats["sources"]["text-1"]
    assert stats["sources"]["text-1"]["filtered_too_short"] == 1
    assert stats["licence"] == "CC-BY-4.0 AND CC0-1.0"


def test_jsonl_gzip_field_and_per_record_licence(tmp_path):
    path = tmp_path / "docs.jsonl.gz"
    records = [{"id": i, "body": f"Document numéro {i}.", "lic": "MIT"} for i in range(5)]
    with gzip.open(path, "wt", encoding="utf-8") as handle:
        handle.writelines(json.dumps(r) + "\n" for r in records)
    spec = {
        "sources": [
            {"kind": "jsonl", "path": str(path), "text_field": "body", "licence_field": "lic"}
        ]
    }
    docs, stats = _build(tmp_path, spec)
    assert [d["id"] for d in docs] == ["0", "1", "2", "3", "4"]
    assert {d["licence"] for d in docs} == {"MIT"}
    assert stats["sources"]["jsonl-0"] == stats["sources"]["jsonl-0"] | {
        "n_docs": 5,
        "licence": "MIT",
    }


def test_mixing_with_weights_and_fixed_counts(tmp_path):
    a, b = tmp_path / "a.txt", tmp_path / "b.txt"
    a.write_text("".join(f"Phrase a{i}.\n" for i in range(100)), encoding="utf-8")
    b.write_text("".join(f"Phrase b{i}.\n" for i in range(100)), encoding="utf-8")
    spec = {
        "n_docs": 40,
        "seed": 3,
        "sources": [
            {"kind": "synthetic", "n_docs": 10, "seed": 1},
            {"kind": "text", "path": str(a), "licence": "MIT", "weight": 3},
            {"kind": "text", "path": str(b), "licence": "MIT", "weight": 1},
        ],
    }
    docs, stats = collect_documents(spec)
    counts = {name: s["n_docs"] for name, s in stats["sources"].items()}
    assert counts == {"synthetic-0": 10, "text-1": 23, "text-2": 7} or counts == {
        "synthetic-0": 10,
        "text-1": 22,
        "text-2": 8,
    }
    assert sum(counts.values()) == stats["n_docs"] == len(docs)
    assert all("entities" in d for d in docs if d["source"] == "synthetic-0")
    assert collect_documents(spec)[0] == docs  # deterministic
    with pytest.raises(CorpusSpecError, match=r"n_docs"):
        collect_documents({"sources": spec["sources"][1:]})


def test_huggingface_save_to_disk_and_parquet(tmp_path):
    datasets = pytest.importorskip("datasets")
    data = datasets.Dataset.from_dict({"texte": ["Première note.", "Seconde note.", ""]})
    data.save_to_disk(str(tmp_path / "saved"))
    data.to_parquet(str(tmp_path / "notes.parquet"))
    for path in (tmp_path / "saved", tmp_path / "notes.parquet"):
        source = {"kind": "huggingface", "path": str(path), "column": "texte", "licence": "MIT"}
        docs, stats = collect_documents({"sources": [source]})
        assert [d["text"] for d in docs] == ["Première note.", "Seconde note."]
        assert stats["sources"]["huggingface-0"]["licence"] == "MIT"
    bad = {
        "kind": "huggingface",
        "path": str(tmp_path / "saved"),
        "column": "text",
        "licence": "MIT",
    }
    with pytest.raises(CorpusSourceError, match=r"no column 'text'.*texte.*set `column`"):
        collect_documents({"sources": [bad]})


def _latin1(path):
    path.write_bytes("fièvre élevée\n".encode("latin-1"))


def _jsonl_without_field(path):
    path.write_text(json.dumps({"id": 1, "body": "texte"}) + "\n", encoding="utf-8")


@pytest.mark.parametrize(
    ("kind", "make", "expected"),
    [
        ("text", None, r"does not exist; fix `path`"),
        ("text", lambda p: p.write_text("\n \n"), r"holds no document; point `path`"),
        ("text", _latin1, r"is not UTF-8.*iconv"),
        ("jsonl", _jsonl_without_field, r"field 'text' is missing.*body.*set `text_field`"),
        ("jsonl", lambda p: p.write_text("{not json\n"), r"line 1 is not valid JSON"),
        ("e3c", _jsonl_without_field, r"field 'text' is missing"),
    ],
)
def test_bad_source_names_file_and_fix_and_writes_nothing(tmp_path, kind, make, expected):
    path = tmp_path / "source.jsonl"
    if make is not None:
        make(path)
    out = tmp_path / "out"
    out.mkdir()
    (out / "documents.jsonl").write_text("previous\n")
    spec = {"sources": [{"kind": "synthetic", "n_docs": 2, "seed": 0}]}
    spec["sources"].append({"kind": kind, "path": str(path), "licence": "MIT"})
    with pytest.raises(CorpusSourceError, match=expected) as error:
        build_corpus(spec, out / "documents.jsonl", out / "build_stats.json", name="mine")
    assert str(path) in str(error.value) and "corpora.mine.sources.1" in str(error.value)
    assert sorted(p.name for p in out.iterdir()) == ["documents.jsonl"]  # no partial file
    assert (out / "documents.jsonl").read_text() == "previous\n"


def test_e3c_folder_layout(tmp_path):
    folder = tmp_path / "e3c"
    folder.mkdir()
    for i, licence in enumerate(("CC BY 4.0", "CC-BY-NC")):
        record = {"text": f"Cas clinique {i}\u00a0: fièvre.", "licence": licence, "source": "PAMJ"}
        (folder / f"doc{i}.json").write_text(json.dumps(record), encoding="utf-8")
    docs, stats = collect_documents({"sources": [{"kind": "e3c", "path": str(folder)}]})
    assert [d["text"] for d in docs] == ["Cas clinique 0 : fièvre.", "Cas clinique 1 : fièvre."]
    assert stats["sources"]["e3c-0"]["licences"] == {"CC BY 4.0": 1, "CC-BY-NC": 1}


@pytest.mark.skipif(not E3C_RAW.exists(), reason=f"E3C raw sample not found at {E3C_RAW}")
def test_e3c_raw_sample_matches_its_readme(tmp_path):
    spec = {"sources": [{"kind": "e3c", "path": str(E3C_RAW), "name": "e3c-layer3"}]}
    docs, stats = _build(tmp_path, spec)
    assert stats["n_docs"] == len(docs) == 2258  # README: 2,258 texts
    assert 28.0e6 < stats["n_characters"] < 29.5e6  # README: 28.7 M characters
    assert 4.0e6 < stats["n_tokens"] < 5.0e6  # README: about 4.5 M words
    assert stats["n_sentences"] > 100_000
    assert stats["dedup_removed"] == 0  # README: deduplicated
    source = stats["sources"]["e3c-layer3"]
    assert source["n_docs"] == 2258 and sum(source["licences"].values()) == 2258
    assert {"CC-BY-NC", "CC BY 4.0"} <= set(source["licences"])
    assert all(d["licence"] for d in docs) and "\u2019" not in docs[0]["text"]
    assert read_json(tmp_path / "out" / "build_stats.json") == stats


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        (
            {"kind": "jsonl", "path": "x.jsonl", "text_fild": "t"},
            r"sources\.1\.text_fild.*text_field",
        ),
        ({"kind": "webcrawl"}, r"sources\.1\.kind.*use one of"),
        ({"kind": "text", "path": "x.txt"}, r"sources\.1.*'licence' is a required property"),
    ],
)
def test_schema_rejects_bad_sources(default_config, source, expected):
    from medistill.config import validate_config
    from medistill.core.errors import ConfigError

    default_config["corpora"]["synth"]["sources"].append(source)
    with pytest.raises(ConfigError, match=expected):
        validate_config(default_config)
