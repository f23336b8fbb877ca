"""Task loaders: real corpora (shared data, skipped where absent) and tiny hand-made folders."""

from __future__ import annotations

import json

import pytest
from conftest import SHARED_DATA

from medistill.config import validate_config
from medistill.core.errors import ConfigError, TaskDataError
from medistill.data.brat import read_brat, semantic_group
from medistill.data.conll import read_conll
from medistill.data.loaders import apply_policy, cut_sentences, load_task
from medistill.data.spans import to_iob2
from medistill.data.tasks import prepare_task

E3C = SHARED_DATA / "e3c-fr"
MANTRA = SHARED_DATA / "mantra-gsc-fr"


def _need(path):
    if not path.exists():
        pytest.skip(f"shared data {path} is absent (see ../shared/data/README.md)")


def test_e3c_iob2_layer1_sentence_counts():
    _need(E3C / "iob2" / "layer1")
    assert len(read_conll(E3C / "iob2" / "layer1" / "train.txt")) == 504
    assert len(read_conll(E3C / "iob2" / "layer1" / "test.txt")) == 605
    spec = {"format": "iob2", "path": str(E3C / "iob2" / "layer1")}
    task = load_task(spec, max_words=1000)
    counts = task["counts"]
    assert counts["train"]["sentences"] + counts["dev"]["sentences"] == 504
    assert counts["dev"]["sentences"] > 0 and counts["test"]["sentences"] == 605
    assert task["labels"] == ["ety"]
    cut = load_task(spec, max_words=64)  # 24 sentences are longer: cut, never truncated
    for split in ("train", "dev", "test"):
        words = [w for s in task["sentences"][split] for w in s["words"]]
        assert [w for s in cut["sentences"][split] for w in s["words"]] == words
        assert max(len(s["words"]) for s in cut["sentences"][split]) <= 64
    assert cut["counts"]["test"]["sentences"] > 605


def test_mantra_units_mentions_and_outermost_policy():
    _need(MANTRA)
    task = load_task({"format": "brat", "path": str(MANTRA), "seed": 0}, max_words=64)
    counts = task["counts"]
    assert counts["units"] == 250
    assert sum(counts[s]["documents"] for s in ("train", "dev", "test")) == 250
    assert counts["mentions_before_policy"] == 1052
    assert counts["mentions_after_policy"] <= 1052
    removed = sum(v for k, v in counts["policy"].items() if k.endswith("_removed"))
    assert removed == 1052 - counts["mentions_after_policy"]
    assert {"ANAT", "CHEM", "DISO", "PROC"} <= set(task["labels"])
    assert all(len(label) == 4 for label in task["labels"])  # groups, not CUIs
    again = load_task({"format": "brat", "path": str(MANTRA), "seed": 0}, max_words=64)
    assert [d["id"] for d in again["documents"]["test"]] == [
        d["id"] for d in task["documents"]["test"]
    ]


def test_e3c_xmi_layer1_official_split_and_mentions():
    _need(E3C / "annotation" / "layer1")
    task = load_task(
        {"format": "e3c-xmi", "path": str(E3C / "annotation" / "layer1"), "dev_fraction": 0.1},
        max_words=64,
    )
    counts = task["counts"]
    assert counts["train"]["documents"] + counts["dev"]["documents"] == 36
    assert counts["test"]["documents"] == 45
    assert counts["mentions_before_policy"] == 1327
    assert counts["policy"]["discontinuous"] > 0
    assert task["labels"] == ["CLINENTITY"]


def test_semantic_group_from_notes_with_commas():
    assert semantic_group('"C0030705", "Patients", "Patient or Disabled Group" ,"LIVB"') == "LIVB"
    assert semantic_group('"C1", "Sodium, Dietary", "Food|Inorganic Chemical" ,"OBJC|CHEM"') == (
        "OBJC"
    )
    assert semantic_group('"C2", "Publications", "OBJC" ,"Manufactured Object"') == "OBJC"


def test_iob1_to_iob2():
    assert to_iob2(["I-A", "I-A", "O", "I-B", "B-B", "I-A"]) == [
        "B-A", "I-A", "O", "B-B", "B-B", "B-A"
    ]  # fmt: skip


def _write_doc(folder, name, text, ann):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.txt").write_text(text, encoding="utf-8")
    (folder / f"{name}.ann").write_text(ann, encoding="utf-8")


QUAERO_TEXT = "Le cancer du poumon est traité par cisplatine et radiothérapie thoracique."
QUAERO_ANN = (
    "T1\tDISO 3 19\tcancer du poumon\n"
    "T2\tANAT 13 19\tpoumon\n"  # nested in T1
    "T3\tCHEM 35 45\tcisplatine\n"
    "T4\tPROC 49 62;63 73\tradiothérapie thoracique\n"  # discontinuous
    "#1\tAnnotatorNotes T1\tnote, with a comma\n"
)


def _quaero(root):
    for split in ("train", "dev", "test"):
        for sub in ("EMEA", "MEDLINE"):
            for i in range(2):
                _write_doc(root / split / sub, f"{sub}-{i}", QUAERO_TEXT, QUAERO_ANN)
    (root / "train" / "EMEA" / "EMEA-0.ann~").write_text("T1\tDISO 0 999\tbroken\n")


def test_brat_quaero_layout(tmp_path):
    _quaero(tmp_path)
    spec = {"format": "brat", "path": str(tmp_path), "subcorpora": ["EMEA"]}
    task = load_task(spec, max_words=64)
    counts = task["counts"]
    assert counts["train"]["documents"] == 2 and counts["test"]["documents"] == 2
    assert counts["mentions_before_policy"] == 6 * 4
    assert counts["policy"]["nested_removed"] == 6
    assert counts["policy"]["discontinuous_covered"] == 6
    assert task["labels"] == ["CHEM", "DISO", "PROC"]
    sentence = task["sentences"]["train"][0]
    tagged = dict(zip(sentence["words"], sentence["tags"], strict=True))
    assert tagged["cancer"] == "B-DISO" and tagged["poumon"] == "I-DISO"
    assert tagged["radiothérapie"] == "B-PROC" and tagged["thoracique"] == "I-PROC"
    both = load_task({**spec, "subcorpora": ["EMEA", "MEDLINE"], "discontinuous": "drop"}, 64)
    assert both["counts"]["train"]["documents"] == 4
    assert both["counts"]["policy"]["discontinuous_dropped"] == 12
    assert both["labels"] == ["CHEM", "DISO"]


def test_per_type_nesting_keeps_one_label_per_word():
    entities = [
        {"start": 0, "end": 10, "label": "DISO"},
        {"start": 2, "end": 5, "label": "DISO"},
        {"start": 6, "end": 9, "label": "ANAT"},
    ]
    kept, counts = apply_policy(entities, nesting="per_type")
    assert kept == [{"start": 0, "end": 10, "label": "DISO"}]
    assert counts["nested_removed"] == 1 and counts["nested_removed_other_type"] == 1


@pytest.mark.parametrize(
    ("ann", "message"),
    [
        ("T1\tDISO 3 999\tcancer\n", "line 1: span 3-999 is outside the text"),
        ("#1\tAnnotatorNotes T1\tx\nT1\tDISO 3 9\tpoumon\n", "line 2: span text 'cancer'"),
        ("T1\tDISO 3 9\tcancer\nT2\tXXXX 13 19\tpoumon\n", "line 2: label 'XXXX' is not in"),
        ("T1\tC0006826 3 9\tcancer\n", "line 1: type C0006826 is a UMLS CUI"),
    ],
)
def test_malformed_brat_names_file_and_line(tmp_path, ann, message):
    _write_doc(tmp_path, "doc", QUAERO_TEXT, ann)
    with pytest.raises(TaskDataError, match=message) as error:
        read_brat(tmp_path / "doc.ann", labels=["DISO", "ANAT"])
    assert str(tmp_path / "doc.ann") in str(error.value)


def test_malformed_conll_and_empty_split(tmp_path):
    (tmp_path / "train.txt").write_text("Le O\ncancer B-DISO\n\nbad\n", encoding="utf-8")
    with pytest.raises(TaskDataError, match=r"train.txt line 4: expected 'token TAG'"):
        read_conll(tmp_path / "train.txt")
    (tmp_path / "train.txt").write_text("Le O\ncancer X-DISO\n", encoding="utf-8")
    with pytest.raises(TaskDataError, match=r"train.txt line 2: tag 'X-DISO'"):
        read_conll(tmp_path / "train.txt")
    (tmp_path / "train.txt").write_text("Le O\ncancer B-DISO\n\nUn O\n", encoding="utf-8")
    (tmp_path / "test.txt").write_text("\n", encoding="utf-8")
    with pytest.raises(TaskDataError, match=r"test.txt\): the test split has no sentence"):
        load_task({"format": "iob2", "path": str(tmp_path)}, max_words=64)


def test_config_with_files_task_validates_and_prepares(default_config, tmp_path):
    (tmp_path / "train.txt").write_text(
        "".join(f"Le O\ncancer I-DISO\ndu I-DISO\nfoie I-ANAT\n{i} O\n\n" for i in range(20)),
        encoding="utf-8",
    )
    (tmp_path / "test.txt").write_text(
        "Un O\ninfarctus I-DISO\nsévère O\n\nHTA I-DISO\n\n", encoding="utf-8"
    )
    files = {"format": "iob1", "path": str(tmp_path), "nesting": "outermost", "seed": 3}
    config = default_config | {"tasks": {**default_config["tasks"], "e3c": {"files": files}}}
    validate_config(config)
    with pytest.raises(Exception, match="files"):
        bad = {"files": {**files, "colour": "red"}}
        validate_config(default_config | {"tasks": {**default_config["tasks"], "e3c": bad}})
    out = tmp_path / "task"
    counts = prepare_task({"files": files}, out, max_words=64, seed=0)
    assert counts["train"]["sentences"] == 18 and counts["dev"]["sentences"] == 2
    for name in ("train", "dev", "test", "test_typo5", "test_abbrev", "test_unseen"):
        assert (out / f"{name}.jsonl").stat().st_size > 0
    labels = json.loads((out / "labels.json").read_text())
    assert labels == ["O", "B-ANAT", "I-ANAT", "B-DISO", "I-DISO"]
    first = json.loads((out / "train.jsonl").read_text().splitlines()[0])
    assert first["tags"] == ["O", "B-DISO", "I-DISO", "B-ANAT", "O"]


def test_cut_sentences_keeps_iob2():
    sentence = {"id": "s", "words": list("abcde"), "tags": ["O", "B-X", "I-X", "I-X", "O"]}
    assert cut_sentences([sentence], 5) == [sentence]
    assert cut_sentences([sentence], 2) == [
        {"id": "s-0", "words": ["a", "b"], "tags": ["O", "B-X"]},
        {"id": "s-1", "words": ["c", "d"], "tags": ["B-X", "I-X"]},
        {"id": "s-2", "words": ["e"], "tags": ["O"]},
    ]


def test_concatenate_nesting_joins_types_on_nested_brat(tmp_path):
    _quaero(tmp_path)
    spec = {"format": "brat", "path": str(tmp_path), "subcorpora": ["EMEA"]}
    task = load_task({**spec, "nesting": "concatenate"}, max_words=64)
    sentence = task["sentences"]["train"][0]
    assert list(zip(sentence["words"], sentence["tags"], strict=True))[1:4] == [
        ("cancer", "B-DISO"), ("du", "I-DISO"), ("poumon", "B-ANAT_DISO")
    ]  # fmt: skip
    policy, docs = task["counts"]["policy"], 6
    assert policy["concatenated"] == 2 * docs and policy["joined_spans"] == docs
    assert "nested_removed" not in policy
    # the outer span is cut where the nested one starts; the nested one becomes ANAT_DISO
    assert task["counts"]["mentions_after_policy"] == task["counts"]["mentions_before_policy"]
    assert task["labels"] == ["ANAT_DISO", "CHEM", "DISO", "PROC"]
    allowed = ["ANAT", "CHEM", "DISO", "PROC"]
    configured = load_task({**spec, "nesting": "concatenate", "labels": allowed}, max_words=64)
    assert configured["labels"] == ["ANAT", "ANAT_DISO", "CHEM", "DISO", "PROC"]
    same_type = [
        {"start": 0, "end": 10, "label": "DISO"},
        {"start": 2, "end": 5, "label": "DISO"},
        {"start": 8, "end": 14, "label": "ANAT"},
    ]
    kept, counts = apply_policy(same_type, nesting="concatenate")
    assert kept == [
        {"start": 0, "end": 8, "label": "DISO"},
        {"start": 8, "end": 10, "label": "ANAT_DISO"},
        {"start": 10, "end": 14, "label": "ANAT"},
    ]
    assert counts["nested_removed"] == 1 and counts["concatenated"] == 2


HF_NAMES = ["O", "B-DISO", "I-DISO", "B-ANAT", "I-ANAT"]


def _hf_copy(folder, splits=("train", "validation", "test"), n=10, columns=("tokens", "ner_tags")):
    """A tiny `save_to_disk` copy shaped like DrBenchmark/QUAERO: ClassLabel tags, IOB1 here."""
    datasets = pytest.importorskip("datasets")
    features = datasets.Features(
        {
            columns[0]: datasets.List(datasets.Value("string")),
            columns[1]: datasets.List(datasets.ClassLabel(names=HF_NAMES)),
        }
    )
    rows = {
        columns[0]: [["Un", "cancer", "du", "foie", f"n{i}"] for i in range(n)],
        columns[1]: [[0, 2, 2, 4, 0]] * n,  # IOB1: I- opens an entity
    }
    data = datasets.DatasetDict(
        {s: datasets.Dataset.from_dict(rows, features=features) for s in splits}
    )
    data.save_to_disk(str(folder))
    return folder


def test_huggingface_local_copy_labels_and_splits(tmp_path):
    path = _hf_copy(tmp_path / "quaero-emea")
    task = load_task({"format": "huggingface", "path": str(path)}, max_words=64)
    assert task["labels"] == ["ANAT", "DISO"]
    assert {s: task["counts"][s]["sentences"] for s in ("train", "dev", "test")} == {
        "train": 10, "dev": 10, "test": 10
    }  # fmt: skip
    first = task["sentences"]["train"][0]
    assert first["words"] == ["Un", "cancer", "du", "foie", "n0"]
    assert first["tags"] == ["O", "B-DISO", "I-DISO", "B-ANAT", "O"]
    short = load_task({"format": "huggingface", "path": str(path)}, max_words=3)
    assert short["sentences"]["test"][1] == {
        "id": "quaero-emea-test-0-1", "words": ["foie", "n0"], "tags": ["B-ANAT", "O"]
    }  # fmt: skip
    with pytest.raises(TaskDataError, match=r"split train row 0: label 'ANAT' is not in"):
        load_task({"format": "huggingface", "path": str(path), "labels": ["DISO"]}, 64)


def test_huggingface_split_and_column_mapping_and_dev_carving(tmp_path):
    path = _hf_copy(tmp_path / "hf", splits=("fit", "eval"), n=20, columns=("words", "tags"))
    spec = {
        "format": "huggingface",
        "path": str(path),
        "splits": {"train": "fit", "test": "eval"},
        "tokens_column": "words",
        "tags_column": "tags",
        "seed": 1,
    }
    task = load_task(spec, max_words=64)
    train, dev = task["sentences"]["train"], task["sentences"]["dev"]
    assert len(train) == 18 and len(dev) == 2  # dev_fraction 0.1 of train, seeded
    assert sorted(s["id"] for s in train + dev) == sorted(f"hf-fit-{i}" for i in range(20))
    again = load_task(spec, max_words=64)
    assert [s["id"] for s in again["sentences"]["dev"]] == [s["id"] for s in dev]
    with pytest.raises(TaskDataError, match=r"no column 'tokens' \(columns: words, tags\)"):
        load_task({**spec, "tokens_column": "tokens"}, max_words=64)
    with pytest.raises(TaskDataError, match=r"has no split 'test' \(splits: fit, eval\)"):
        load_task({**spec, "splits": {"train": "fit", "test": "test"}}, max_words=64)


def test_huggingface_missing_dataset_offline_names_it_and_the_fix(monkeypatch):
    pytest.importorskip("datasets")
    spec = {"format": "huggingface", "name": "nobody/no-such-quaero", "config": "emea"}
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # what prepare_job sets for allow_network: false
    for kwargs in ({}, {"allow_network": False}):
        with pytest.raises(TaskDataError) as error:
            load_task(spec, max_words=64, **kwargs)
        message = str(error.value)
        assert "nobody/no-such-quaero" in message and "allow_network is false" in message
        assert "load_dataset('nobody/no-such-quaero', 'emea').save_to_disk(" in message
        assert "`path: no-such-quaero-emea`" in message and "allow_network: true" in message
    datasets = pytest.importorskip("datasets")

    def script(*args, **kwargs):
        raise RuntimeError("Dataset scripts are no longer supported, but found QUAERO.py")

    monkeypatch.setattr(datasets, "load_dataset", script)
    with pytest.raises(TaskDataError, match=r"loading script.*datasets<4.*save_to_disk"):
        load_task(spec, max_words=64, allow_network=True)
    with pytest.raises(TaskDataError, match=r"path .*absent does not exist"):
        load_task({"format": "huggingface", "path": "/nowhere/absent"}, max_words=64)


def test_schema_accepts_huggingface_and_concatenate(default_config):
    def check(files):
        tasks = {**default_config["tasks"], "real": {"files": files}}
        return validate_config(default_config | {"tasks": tasks})

    check(
        {
            "format": "huggingface",
            "name": "DrBenchmark/QUAERO",
            "config": "emea",
            "revision": "main",
            "tokens_column": "tokens",
            "tags_column": "ner_tags",
            "splits": {"train": "train", "dev": "validation", "test": "test"},
            "labels": ["ANAT", "DISO"],
            "seed": 1,
            "dev_fraction": 0.2,
        }
    )
    check({"format": "huggingface", "path": "/data/quaero-emea"})
    check({"format": "brat", "path": "/data/quaero", "nesting": "concatenate"})
    for bad in (
        {"format": "huggingface"},  # neither name nor path
        {"format": "huggingface", "name": "a/b", "path": "/data/x"},  # both
        {"format": "brat", "name": "a/b"},  # no path; name is for huggingface
        {"format": "iob2", "path": "/data/x", "tokens_column": "words"},
        {"format": "brat", "path": "/data/x", "nesting": "innermost"},
    ):
        with pytest.raises(Exception, match="real"):
            check(bad)


def _xmi(text: str) -> str:
    return (
        '<?xml version="1.0" encoding="UTF-8"?><xmi:XMI xmlns:xmi="http://www.omg.org/XMI" '
        'xmlns:cas="http:///uima/cas.ecore"><cas:Sofa xmi:id="1" sofaString="'
        + text
        + '"/></xmi:XMI>'
    )


def test_iob2_sentences_get_their_documents_and_dev_is_carved_by_document(tmp_path):
    docs = tmp_path / "xmi"
    docs.mkdir()
    train_docs = {f"D{i}": [f"Patient {i} tousse .", f"Fièvre {i} depuis hier ."] for i in range(6)}
    for doc, sentences in train_docs.items():
        (docs / f"{doc}.xml").write_text(_xmi("\n".join(sentences)), encoding="utf-8")
    (docs / "T0.xml").write_text(_xmi("Le cancer  récidive."), encoding="utf-8")

    def conll(sentences):
        return "\n\n".join("\n".join(f"{w} O" for w in s.split()) for s in sentences) + "\n"

    iob = tmp_path / "iob"
    iob.mkdir()
    (iob / "train.txt").write_text(conll(sum(train_docs.values(), [])), encoding="utf-8")
    (iob / "test.txt").write_text(conll(["Le cancer récidive ."]), encoding="utf-8")
    spec = {"format": "iob2", "path": str(iob), "documents": str(docs), "dev_fraction": 0.34}
    task = load_task(spec, max_words=64)["sentences"]
    assert [s["doc"] for s in task["test"]] == ["T0"]  # found across spacing
    dev_docs = {s["doc"] for s in task["dev"]}
    assert len(dev_docs) == 2 and not dev_docs & {s["doc"] for s in task["train"]}
    assert len(task["dev"]) == 4 and len(task["train"]) == 8  # whole documents, both sentences
    (iob / "test.txt").write_text(conll(["Une phrase absente ."]), encoding="utf-8")
    with pytest.raises(TaskDataError, match=r"sentence test-0 \(4 words\) is in no document"):
        load_task(spec, max_words=64)


def test_e3c_iob2_sentences_map_to_the_xmi_documents():
    _need(E3C / "annotation" / "layer1")
    spec = {
        "format": "iob2",
        "path": str(E3C / "iob2" / "layer1"),
        "documents": str(E3C / "annotation" / "layer1"),
        "dev_fraction": 0.15,
    }
    sentences = load_task(spec, max_words=64)["sentences"]
    docs = {split: {s["doc"] for s in ss} for split, ss in sentences.items()}
    assert len(docs["test"]) == 45 and len(docs["train"] | docs["dev"]) == 36
    assert not docs["train"] & docs["dev"] and not docs["test"] & (docs["train"] | docs["dev"])


def test_a_task_file_key_of_another_format_is_named_with_the_format(default_config):
    for files, message in (
        ({"format": "brat", "path": "/data/x", "documents": "/data/xmi"}, "documents"),
        ({"format": "e3c-xmi", "path": "/data/x", "name": "a/b"}, "name"),
    ):
        tasks = {**default_config["tasks"], "real": {"files": files}}
        with pytest.raises(
            ConfigError,
            match=rf"tasks.real.files: {message} is not a setting of format {files['format']}; "
            "remove it",
        ):
            validate_config(default_config | {"tasks": tasks})
