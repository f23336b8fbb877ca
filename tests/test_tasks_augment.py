import random

import pytest
from conftest import SHARED_DATA

from medistill.core.io import read_json, write_json
from medistill.data.augment import (
    BUILTIN_ABBREVIATIONS,
    Augmenter,
    augment_corpus,
    augment_corpus_file,
    is_typo_target,
    load_abbreviations,
    novel_name,
    read_abbreviation_file,
    typo,
    typo_words,
)
from medistill.data.spans import WORD, document_sentences, iob2_labels
from medistill.data.tasks import ROBUSTNESS_SETS, prepare_task, unseen_test_set
from medistill.ner.scoring import mask_ignored

DOC = {
    "id": "d1",
    "text": "Patient suivi pour insuffisance cardiaque. Traité par furosémide 40 mg.",
    "entities": [
        {"start": 19, "end": 41, "label": "DISO"},
        {"start": 54, "end": 64, "label": "CHEM"},
    ],
}


def test_labels_are_fixed_iob2():
    labels = iob2_labels(("DISO", "CHEM"))
    assert labels == ["O", "B-DISO", "I-DISO", "B-CHEM", "I-CHEM"]


def test_document_sentences_tags_entities_in_iob2():
    sentences = document_sentences(DOC, max_words=64)
    assert [s["words"] for s in sentences][0] == [
        "Patient",
        "suivi",
        "pour",
        "insuffisance",
        "cardiaque",
        ".",
    ]
    assert sentences[0]["tags"] == ["O", "O", "O", "B-DISO", "I-DISO", "O"]
    assert sentences[1]["tags"][:3] == ["O", "O", "B-CHEM"]
    # each sentence names its document: the unit the evaluation's bootstrap resamples
    assert {s["doc"] for s in sentences} == {DOC["id"]}


def test_long_sentences_are_chunked_and_stay_iob2():
    sentences = document_sentences(DOC, max_words=4)
    words = [w for s in sentences for w in s["words"]]
    assert words == WORD.findall(DOC["text"])  # nothing lost
    assert sentences[1]["tags"][0] == "B-DISO"  # a chunk starting inside an entity opens it


def test_documents_without_entities_have_no_tags():
    sentences = document_sentences({"id": "x", "text": "Bonjour. Au revoir."}, 64)
    assert all("tags" not in s for s in sentences)


def test_typo_changes_one_word_and_keeps_it_a_word():
    rng = random.Random(0)
    for word in ["fièvre", "dyspnée", "paracétamol", "abc"]:
        for _ in range(50):
            noisy = typo(word, rng)
            assert noisy != word and noisy.isalpha() and len(WORD.findall(noisy)) == 1


def test_typo_words_hits_the_requested_rate_and_skips_numbers():
    rng = random.Random(1)
    words = ["patient", "traité", "par", "40", "mg", ",", "fièvre", "toux"] * 2000
    noisy = typo_words(words, 0.05, rng)
    changed = sum(a != b for a, b in zip(words, noisy, strict=True))
    assert 0.04 < changed / len(words) < 0.06
    assert all(a == b for a, b in zip(words, noisy, strict=True) if not is_typo_target(a))


def test_augmented_documents_keep_entity_spans():
    rng = random.Random(3)
    for _ in range(30):
        noisy = Augmenter(typo_rate=0.5)(DOC, rng, "~n")
        assert noisy["id"] == "d1~n"
        for before, after in zip(DOC["entities"], noisy["entities"], strict=True):
            surface = DOC["text"][before["start"] : before["end"]]
            new_surface = noisy["text"][after["start"] : after["end"]]
            assert len(WORD.findall(new_surface)) == len(WORD.findall(surface))
        clean_tags = [s["tags"] for s in document_sentences(DOC, 64)]
        assert [s["tags"] for s in document_sentences(noisy, 64)] == clean_tags


def test_augment_corpus_keeps_clean_copies_and_measures_rate():
    docs, rates = augment_corpus([DOC] * 20, typo_rate=0.1, noisy_copies=2, seed=0)
    assert len(docs) == 60 and docs[:20] == [DOC] * 20
    assert 0.02 < rates["typo"] < 0.2
    again, _ = augment_corpus([DOC] * 20, typo_rate=0.1, noisy_copies=2, seed=0)
    assert again == docs


# --- abbreviations, new concepts, robustness test sets ---------------------------------------


HTA_DOC = {
    "id": "h",
    "text": "Antécédents d'hypertension artérielle et d'IDM. Traitement par ramipril.",
    "entities": [
        {"start": 14, "end": 37, "label": "DISO"},
        {"start": 43, "end": 46, "label": "DISO"},
        {"start": 63, "end": 71, "label": "CHEM"},
    ],
}


def _surfaces(doc):
    return [doc["text"][e["start"] : e["end"]] for e in doc["entities"]]


def test_builtin_abbreviation_lexicon():
    pairs = read_abbreviation_file(BUILTIN_ABBREVIATIONS)
    assert len(pairs) >= 40
    assert ("HTA", "hypertension artérielle") in pairs and ("ttt", "traitement") in pairs


def test_abbreviation_moves_entity_span_to_short_form_and_back():
    lexicon = load_abbreviations()
    shorten = Augmenter(
        abbreviation_rate=1.0, abbreviations=lexicon, abbreviation_direction="shorten"
    )
    short = shorten(HTA_DOC, random.Random(0), suffix="~a")
    assert short["text"] == "ATCD d'HTA et d'IDM. ttt par ramipril."
    assert _surfaces(short) == ["HTA", "IDM", "ramipril"]
    expand = Augmenter(
        abbreviation_rate=1.0, abbreviations=lexicon, abbreviation_direction="expand"
    )
    long = expand(short, random.Random(0), suffix="")
    assert _surfaces(long) == ["hypertension artérielle", "infarctus du myocarde", "ramipril"]
    assert long["text"].startswith("antécédents d'hypertension artérielle et d'infarctus")


def test_external_abbreviation_lexicon_loads_or_is_skipped(tmp_path, caplog):
    inventory = SHARED_DATA / "abbreviations-fr" / "sense_inventory" / "sense_inventory.json"
    base = len(load_abbreviations())
    assert len(load_abbreviations([str(tmp_path / "absent.tsv")])) == base
    assert "absent.tsv" in caplog.text
    if not inventory.exists():
        pytest.skip(f"abbreviation sense inventory not found at {inventory}")
    lexicon = load_abbreviations([str(inventory)])
    assert len(lexicon) > base + 1000
    # Lower-case short forms of the inventory also match their all-caps spelling.
    assert lexicon.candidates("AAG sévère") == [(0, 3, "asthme aigu grave", False)]


def test_new_concepts_replace_mentions_with_novel_names():
    augmenter = Augmenter(new_concept_rate=1.0)
    noisy = augmenter(HTA_DOC, random.Random(1), suffix="~c")
    assert all(e["novel"] for e in noisy["entities"])
    assert [e["label"] for e in noisy["entities"]] == ["DISO", "DISO", "CHEM"]
    for surface in _surfaces(noisy):
        assert surface not in _surfaces(HTA_DOC)
    assert " d' " not in noisy["text"] and "de a" not in noisy["text"]
    rng = random.Random(0)
    drugs = {novel_name("CHEM", rng) for _ in range(200)}
    stems = ("mab", "tinib", "vir", "prazole")
    assert all(any(d.endswith(s) for d in drugs) for s in stems)
    assert augmenter.measured_rates()["new_concept"] == 1.0


def test_augment_corpus_file_merges_build_stats(tmp_path):
    from medistill.core.io import write_jsonl

    write_jsonl([DOC, HTA_DOC], tmp_path / "documents.jsonl")
    write_json({"n_docs": 2, "sources": {"x": {"licence": "MIT"}}}, tmp_path / "build.json")
    spec = {"typo_rate": 0.1, "abbreviation_rate": 0.5, "noisy_copies": 2, "seed": 1}
    augment_corpus_file(
        spec,
        tmp_path / "documents.jsonl",
        tmp_path / "build.json",
        tmp_path / "augmented.jsonl",
        tmp_path / "stats.json",
    )
    stats = read_json(tmp_path / "stats.json")
    assert stats["n_docs"] == 2 and stats["sources"] == {"x": {"licence": "MIT"}}
    rates = stats["augmentation"]["measured_rates"]
    assert set(rates) == {"typo", "case", "abbreviation", "new_concept"}
    assert stats["augmentation"]["n_docs_out"] == 6


def test_unseen_masks_mentions_seen_in_train():
    train = [{"words": ["HTA", "et", "toux"], "tags": ["B-DISO", "O", "B-SOSY"]}]
    test = [
        {"words": ["Toux", "et", "zona", "grave"], "tags": ["B-SOSY", "O", "B-DISO", "I-DISO"]},
    ]
    sets, counts = unseen_test_set(test, train)
    assert sets[0]["ignore"] == [True, False, False, False]
    assert counts == {"mentions_unseen": 1, "share_unseen": 0.5}
    predicted = [["B-SOSY", "B-DISO", "I-DISO", "I-DISO"]]  # the first overlaps a masked one
    gold, masked = mask_ignored(sets, predicted)
    assert gold == [["O", "O", "B-DISO", "I-DISO"]]
    assert masked == [["O", "B-DISO", "I-DISO", "I-DISO"]]  # a false positive stays one
    _, masked = mask_ignored(sets, [["B-SOSY", "I-SOSY", "O", "B-DISO"]])
    assert masked == [["O", "O", "O", "B-DISO"]]
    _, masked = mask_ignored(sets, [["B-SOSY", "O", "B-DISO", "I-DISO"]])
    assert masked == [["O", "O", "B-DISO", "I-DISO"]]


def test_prepare_task_writes_robustness_sets(tmp_path):
    spec = {"synthetic": {"seed": 3, "train_docs": 30, "dev_docs": 2, "test_docs": 12}}
    counts = prepare_task(spec, tmp_path, max_words=64, seed=13)
    from medistill.core.io import read_jsonl

    test = read_jsonl(tmp_path / "test.jsonl")
    sets = {name: read_jsonl(tmp_path / f"test_{name}.jsonl") for name in ROBUSTNESS_SETS}
    for name in ("typo5", "typo15"):
        assert [s["tags"] for s in sets[name]] == [s["tags"] for s in test]
        pairs = zip(test, sets[name], strict=True)
        words = [(a, b) for s, t in pairs for a, b in zip(s["words"], t["words"], strict=True)]
        rate = sum(a != b for a, b in words) / len(words)
        assert abs(rate - int(name[4:]) / 100) < 0.3 * int(name[4:]) / 100, (name, rate)
    abbrev_words = {w for s in sets["abbrev"] for w in s["words"]}
    assert {"ttt", "ATCD"} & abbrev_words and 0 < len(sets["abbrev"]) < len(test)
    for sentence in sets["abbrev"] + sets["unseen"]:
        assert len(sentence["words"]) == len(sentence["tags"])
    assert all(len(s["ignore"]) == len(s["words"]) for s in sets["unseen"])
    assert 0.1 < counts["robustness"]["share_unseen"] < 0.9
