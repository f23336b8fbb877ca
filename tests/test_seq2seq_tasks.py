"""Seq2seq task folders: disjoint, reproducible splits and robustness sets whose sources are
noisy in the intended way, their entity spans still on their text, from every data source."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from medistill.core.errors import ConfigError, TaskDataError
from medistill.core.io import read_jsonl
from medistill.data.augment import load_abbreviations
from medistill.data.french import strip_accents
from medistill.data.lexicons import load_lexicons
from medistill.seq2seq.pairs import EXERCISE, SUMMARY
from medistill.seq2seq.tasks import (
    SEQ2SEQ_ROBUSTNESS_SETS,
    check_pair_files,
    prepare_seq2seq_task,
)

SPLITS = ("train", "dev", "test")
SYNTHETIC = {"seed": 3, "train_docs": 30, "dev_docs": 4, "test_docs": 8}
FILES = (*(f"{split}.jsonl" for split in SPLITS), "stats.json") + tuple(
    f"test_{name}.jsonl" for name in SEQ2SEQ_ROBUSTNESS_SETS
)


def _key(text: str) -> str:
    return strip_accents(text.casefold())


def _read_folder(folder: Path) -> dict[str, list[dict]]:
    names = (*SPLITS, *(f"test_{name}" for name in SEQ2SEQ_ROBUSTNESS_SETS))
    return {name: read_jsonl(folder / f"{name}.jsonl") for name in names}


@pytest.fixture(scope="module", params=[SUMMARY, EXERCISE])
def synthetic_task(request, tmp_path_factory) -> tuple[Path, dict, dict[str, list[dict]]]:
    folder = tmp_path_factory.mktemp(f"synthetic-{request.param}")
    stats = prepare_seq2seq_task({"kind": request.param, "synthetic": SYNTHETIC}, folder, seed=0)
    return folder, stats, _read_folder(folder)


def test_synthetic_splits_are_disjoint_and_deterministic(synthetic_task, tmp_path):
    folder, stats, data = synthetic_task
    assert sorted(p.name for p in folder.iterdir()) == sorted(FILES)
    for split in SPLITS:
        assert len(data[split]) == SYNTHETIC[f"{split}_docs"] == stats[split]["pairs"]
    independent = (*SPLITS, "test_unseen")
    for i, first in enumerate(independent):
        for second in independent[i + 1 :]:
            assert not {p["id"] for p in data[first]} & {p["id"] for p in data[second]}
            assert not {p["source"] for p in data[first]} & {p["source"] for p in data[second]}

    kind = data["train"][0]["task"]
    again = prepare_seq2seq_task({"kind": kind, "synthetic": SYNTHETIC}, tmp_path, seed=0)
    assert again == stats
    for name in FILES:
        assert (tmp_path / name).read_bytes() == (folder / name).read_bytes(), name
    # A larger train split leaves the test pairs as they were: every split has its own seed.
    larger = prepare_seq2seq_task(
        {"kind": kind, "synthetic": {**SYNTHETIC, "train_docs": 40}}, tmp_path / "larger", seed=0
    )
    assert larger["train"]["pairs"] == 40
    assert read_jsonl(tmp_path / "larger" / "test.jsonl") == data["test"]


def test_every_entity_span_points_at_its_text(synthetic_task):
    _, _, data = synthetic_task
    for name, pairs in data.items():
        for pair in pairs:
            for side in ("source", "target"):
                assert pair[f"{side}_entities"], (name, pair["id"])
                for entity in pair[f"{side}_entities"]:
                    assert pair[side][entity["start"] : entity["end"]] == entity["text"], name


def test_noisy_sets_change_the_source_only(synthetic_task):
    _, stats, data = synthetic_task
    clean = {pair["id"]: pair for pair in data["test"]}
    for name in ("test_typo5", "test_abbrev"):
        assert data[name] and stats["robustness"][name[5:]]["pairs"] == len(data[name])
        for pair in data[name]:
            original = clean[pair["id"]]
            assert pair["target"] == original["target"]
            assert pair["target_entities"] == original["target_entities"]
            assert pair["source"] != original["source"]
            assert len(pair["source_entities"]) == len(original["source_entities"])
    # Typos change letters, never word boundaries: the same number of words, some misspelt.
    for pair in data["test_typo5"]:
        noisy, original = pair["source"].split(), clean[pair["id"]]["source"].split()
        assert len(noisy) == len(original)
        assert 0 < sum(a != b for a, b in zip(noisy, original, strict=True)) < len(original) / 4
    assert 0.02 < stats["robustness"]["typo5"]["word_typo_rate"] < 0.08


def test_abbreviation_set_holds_the_short_forms(synthetic_task):
    _, stats, data = synthetic_task
    lexicon = load_abbreviations()
    clean = {pair["id"]: pair for pair in data["test"]}

    def occurrences(short: str, text: str) -> int:
        return len(re.findall(rf"(?<!\w){re.escape(short)}(?!\w)", text))

    assert data["test_abbrev"] and not stats["robustness"]["abbrev"]["all_test_pairs"]
    for pair in data["test_abbrev"]:
        source = clean[pair["id"]]["source"]
        shorts = {short for _, _, short, shortens in lexicon.candidates(source) if shortens}
        # Each pair holds more short forms than its clean source: its long forms became them.
        assert any(occurrences(s, pair["source"]) > occurrences(s, source) for s in shorts)
    # An entity that was a long form now covers its short form.
    short_forms = {short for short, _ in lexicon.pairs}
    assert any(
        entity["text"] in short_forms
        for pair in data["test_abbrev"]
        for entity in pair["source_entities"]
    )


def test_unseen_set_holds_heldout_terms_never_seen_in_training(synthetic_task):
    _, stats, data = synthetic_task
    lexicons = load_lexicons()
    heldout = {_key(term) for terms in lexicons.heldout.values() for term in terms}
    train_mentions = {_key(e["text"]) for pair in data["train"] for e in pair["source_entities"]}
    assert len(data["test_unseen"]) == SYNTHETIC["test_docs"]
    for pair in data["test_unseen"]:
        novel = {_key(e["text"]) for e in pair["source_entities"]} & heldout
        assert novel and not novel & train_mentions, pair["id"]
    assert stats["robustness"]["unseen"]["heldout_mentions"] > 0


# ---------------------------------------------------------------------------------------------
# Pair files


def _write_jsonl(path: Path, records: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records))
    return path


TRAIN_TARGET = "Motif : fièvre. Traitement : paracétamol."


def test_files_spec_with_jsonl_train_csv_test_and_carved_dev(tmp_path):
    train = _write_jsonl(
        tmp_path / "train.jsonl",
        [
            {"id": f"cr{i}", "texte": f"Patient {i} admis pour fièvre.", "resume": TRAIN_TARGET}
            for i in range(20)
        ],
    )
    test = tmp_path / "test.csv"
    test.write_text(
        "texte,resume\n"
        '"Patiente connue pour hypertension artérielle, admise pour fièvre.","Motif : fièvre."\n'
        '"Douleur abdominale, lipase élevée.","Motif : pancréatite aiguë."\n'
        "Fièvre isolée.,Motif : fièvre.\n"
    )
    spec = {
        "kind": SUMMARY,
        "files": {
            "train": str(train),
            "test": str(test),
            "dev_fraction": 0.25,
            "seed": 1,
            "source_field": "texte",
            "target_field": "resume",
        },
    }
    check_pair_files(spec)
    stats = prepare_seq2seq_task(spec, tmp_path / "task", seed=0)
    data = _read_folder(tmp_path / "task")
    assert [stats[s]["pairs"] for s in SPLITS] == [15, 5, 3]
    train_ids, dev_ids = {p["id"] for p in data["train"]}, {p["id"] for p in data["dev"]}
    assert not train_ids & dev_ids and train_ids | dev_ids == {f"cr{i}" for i in range(20)}
    assert [p["id"] for p in data["test"]] == ["test-2", "test-3", "test-4"]  # FILE-LINE
    assert all(p["source_entities"] is None for name in data for p in data[name])
    assert prepare_seq2seq_task(spec, tmp_path / "again", seed=0) == stats
    assert read_jsonl(tmp_path / "again" / "dev.jsonl") == data["dev"]

    assert len(data["test_typo5"]) == 3
    # Only the source with a long form of the lexicon is kept, shortened.
    assert [p["id"] for p in data["test_abbrev"]] == ["test-2"]
    assert "HTA" in data["test_abbrev"][0]["source"]
    # "pancréatite" and "aiguë" are the only target words no train target holds.
    assert [p["id"] for p in data["test_unseen"]] == ["test-3"]
    assert stats["robustness"]["unseen"] == {"pairs": 1, "unseen_target_words": 2}


def test_a_malformed_line_stops_check_pair_files_with_file_and_line(tmp_path):
    good = {"source": "Fièvre.", "target": "Motif : fièvre."}
    train = tmp_path / "train.jsonl"
    train.write_text(json.dumps(good) + "\n" + '{"source": "Toux", "target": \n')
    test = _write_jsonl(tmp_path / "test.jsonl", [good, good])
    spec = {"kind": SUMMARY, "files": {"train": str(train), "test": str(test)}}
    with pytest.raises(TaskDataError, match=rf"{re.escape(str(train))} line 2: is not valid JSON"):
        check_pair_files(spec)
    with pytest.raises(TaskDataError, match=rf"{re.escape(str(train))} line 2"):
        check_pair_files(spec["files"])  # the files mapping alone reads the same
    with pytest.raises(TaskDataError, match=rf"{re.escape(str(train))} line 2"):
        prepare_seq2seq_task(spec, tmp_path / "task", seed=0)


def test_a_spec_needs_one_data_source_and_a_known_kind(tmp_path):
    with pytest.raises(ConfigError, match="exactly one of"):
        prepare_seq2seq_task({"kind": SUMMARY}, tmp_path, seed=0)
    with pytest.raises(ConfigError, match="kind must be one of"):
        prepare_seq2seq_task({"kind": "translation", "synthetic": SYNTHETIC}, tmp_path, seed=0)


# ---------------------------------------------------------------------------------------------
# Hugging Face datasets


@pytest.fixture(scope="module")
def saved_dataset(tmp_path_factory) -> Path:
    """A tiny `save_to_disk` folder like MultiClinSum's: train and test, no validation split;
    one train row has an empty summary (real datasets have some)."""
    import datasets

    folder = tmp_path_factory.mktemp("hf") / "clinsum-fr"
    reports = [f"Patient {i} admis pour douleur thoracique." for i in range(10)]
    data = datasets.DatasetDict(
        {
            "train": datasets.Dataset.from_dict(
                {"report": reports, "summary": ["Motif : douleur thoracique."] * 9 + [""]}
            ),
            "test": datasets.Dataset.from_dict(
                {
                    "report": ["Douleur thoracique et hypertension artérielle.", "Syncope."],
                    "summary": ["Motif : douleur thoracique.", "Motif : syncope."],
                }
            ),
        }
    )
    data.save_to_disk(str(folder))
    return folder


def test_huggingface_spec_from_a_save_to_disk_folder(saved_dataset, tmp_path):
    spec = {
        "kind": SUMMARY,
        "huggingface": {
            "path": str(saved_dataset),
            "source_field": "report",
            "target_field": "summary",
            "dev_fraction": 0.2,
        },
    }
    stats = prepare_seq2seq_task(spec, tmp_path, seed=0)
    data = _read_folder(tmp_path)
    assert [stats[s]["pairs"] for s in SPLITS] == [7, 2, 2]
    assert stats["skipped_empty_rows"] == {"train": 1, "test": 0}
    assert {p["id"] for p in data["train"] + data["dev"]} == {
        f"clinsum-fr-train-{i}" for i in range(9)
    }
    assert [p["id"] for p in data["test"]] == ["clinsum-fr-test-0", "clinsum-fr-test-1"]
    assert all(p["target_entities"] is None and p["task"] == SUMMARY for p in data["test"])
    assert [p["id"] for p in data["test_abbrev"]] == ["clinsum-fr-test-0"]
    assert [p["id"] for p in data["test_unseen"]] == ["clinsum-fr-test-1"]  # "syncope"


def test_huggingface_missing_column_names_dataset_split_and_columns(saved_dataset, tmp_path):
    spec = {"kind": EXERCISE, "huggingface": {"path": str(saved_dataset), "source_field": "text"}}
    with pytest.raises(TaskDataError) as error:
        prepare_seq2seq_task(spec, tmp_path, seed=0)
    message = str(error.value)
    assert str(saved_dataset) in message and "split train" in message
    assert "'text'" in message and "report, summary" in message
    missing_split = {**spec["huggingface"], "source_field": "report", "target_field": "summary"}
    missing_split["splits"] = {"test": "validation"}
    with pytest.raises(TaskDataError, match=r"no split 'validation' \(splits: train, test\)"):
        prepare_seq2seq_task({"kind": EXERCISE, "huggingface": missing_split}, tmp_path, seed=0)
