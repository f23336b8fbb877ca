import random

from medistill.augment import augment_corpus, augment_document, is_typo_target, typo, typo_words
from medistill.tasks import WORD, document_sentences, iob2_labels

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
        noisy = augment_document(DOC, 0.5, rng, suffix="~n")
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
