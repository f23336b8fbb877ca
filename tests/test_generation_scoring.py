"""Scores of generated text: ROUGE on French words, entity faithfulness, exercise
answerability, the lead baseline and the corpus scores."""

from __future__ import annotations

import pytest

from medistill.data.french import strip_accents
from medistill.data.lexicons import load_lexicons
from medistill.seq2seq.pairs import EXERCISE, SUMMARY, synthetic_pairs
from medistill.seq2seq.scoring import (
    corpus_rouge,
    entity_faithfulness,
    exercise_answerable,
    lead_baseline,
    medical_mentions,
    rouge,
    score_generations,
)


@pytest.fixture(scope="module")
def summary() -> dict:
    return synthetic_pairs(SUMMARY, 1, seed=0)[0]


def test_rouge_is_one_for_identical_text_and_reads_french_words():
    text = "Hospitalisation pour décompensation d'insuffisance cardiaque."
    assert rouge(text, text) == {"rouge1": 1.0, "rouge2": 1.0, "rougeL": 1.0}
    assert rouge("Hépatite aiguë sévère", "hépatite aiguë sévère")["rouge2"] == 1.0
    # rouge-score's own tokenizer cuts both into "h", "patite"/"patique": a shared word "h".
    assert rouge("hépatite", "hépatique")["rouge1"] == 0.0
    assert rouge("hépatite virale", "hepatite virale")["rouge1"] == 0.5  # accents are spelling


def test_corpus_rouge_is_the_mean():
    means = corpus_rouge(["toux grasse", "fièvre"], ["toux grasse", "céphalées"])
    assert means["rouge1"] == 0.5 and means["rougeL"] == 0.5
    with pytest.raises(ValueError, match="2 predictions for 1 references"):
        corpus_rouge(["a", "b"], ["a"])


def test_mentions_ignore_case_accents_and_ligatures():
    mentions = medical_mentions("Sous AMOXICILLINE pour insuffisance cardiaque, coeur normal.")
    assert mentions == [
        {"text": "AMOXICILLINE", "label": "CHEM"},
        {"text": "insuffisance cardiaque", "label": "DISO"},  # the longest term wins
        {"text": "coeur", "label": "ANAT"},  # the lexicon writes "cœur"
    ]
    known = [{"text": "zorbaxine", "label": "CHEM"}]  # in no lexicon: found only when known
    assert medical_mentions("Zorbaxine 5 mg.") == []
    assert medical_mentions("Zorbaxine 5 mg.", known) == [{"text": "Zorbaxine", "label": "CHEM"}]


def test_faithful_output(summary):
    scores = entity_faithfulness(
        summary["target"], summary["target_entities"], summary["source_entities"]
    )
    assert scores["entity_recall"] == 1.0 and scores["entity_precision"] == 1.0
    assert scores["hallucinated"] == 0


def test_hallucinated_drug_and_missed_entity_are_counted(summary):
    source = strip_accents(summary["source"].casefold())
    invented = next(d for d in load_lexicons().train["CHEM"] if strip_accents(d) not in source)
    reference = summary["target_entities"]
    dropped = reference[-1]["text"]
    output = summary["target"].replace(dropped, "") + f" Relais par {invented.upper()} 5 mg."
    scores = entity_faithfulness(output, reference, summary["source_entities"])
    assert scores["hallucinated"] == 1
    assert scores["hallucinated_entities"] == [{"text": invented.upper(), "label": "CHEM"}]
    assert scores["entity_recall"] == (len(reference) - 1) / len(reference)
    supported = scores["output_entities"] - 1
    assert scores["entity_precision"] == supported / scores["output_entities"] < 1.0


def test_part_of_a_source_entity_is_not_hallucinated():
    source_entities = [{"text": "insuffisance cardiaque gauche", "label": "DISO"}]
    reference = [{"text": "hépatite", "label": "DISO"}]
    scores = entity_faithfulness("HEPATITE et insuffisance cardiaque.", reference, source_entities)
    assert scores["entity_recall"] == 1.0  # case and accents ignored
    assert scores["hallucinated"] == 0 and scores["output_entities"] == 2


SOURCE = "Motif : fièvre. Traitement : amoxicilline 1 g 3 fois par jour. Pas de toux."
SOURCE_ENTITIES = [
    {"text": "fièvre", "label": "SOSY"},
    {"text": "amoxicilline", "label": "CHEM"},
    {"text": "toux", "label": "SOSY"},
]


@pytest.mark.parametrize(
    ("exercise", "answerable"),
    [
        ("Question : Quelle posologie ?\nRéponse : Amoxicilline 1 g.", True),  # the words
        ("Question : Fièvre ?\nRéponse : Oui : FIEVRE.", True),  # all its entities
        ("Question : Toux ?\nRéponse : Non : pas de toux.", True),
        ("amoxicilline 1 g", True),  # no "Réponse :": the whole text is the answer
        ("Question : Quel traitement ?\nRéponse : amoxicilline et ramipril.", False),
        ("Question : Quel traitement ?\nRéponse : ramipril 5 mg.", False),  # not in the report
        ("Question : Quelle dose ?\nRéponse : 2 g.", False),  # no entity, not in the report
        ("Question : Quel traitement ?\nRéponse :", False),
    ],
)
def test_exercise_answerability(exercise, answerable):
    assert exercise_answerable(exercise, SOURCE, SOURCE_ENTITIES) is answerable


def test_lead_baseline_takes_the_first_sentences():
    assert (
        lead_baseline(SOURCE, 2) == "Motif : fièvre. Traitement : amoxicilline 1 g 3 fois par jour."
    )
    assert lead_baseline(SOURCE, 10) == SOURCE
    with pytest.raises(ValueError, match="n_sentences must be >= 1"):
        lead_baseline(SOURCE, 0)


def test_corpus_scores_of_references_baseline_and_real_pairs():
    summaries = synthetic_pairs(SUMMARY, 20, seed=1)
    exercises = synthetic_pairs(EXERCISE, 20, seed=1)
    perfect = score_generations(summaries + exercises, [p["target"] for p in summaries + exercises])
    assert perfect["rouge1"] == perfect["rougeL"] == 1.0
    assert perfect["entity_recall"] == perfect["entity_precision"] == 1.0
    assert perfect["hallucinated_per_output"] == 0.0 and perfect["answerable"] == 1.0

    lead = score_generations(summaries, [lead_baseline(p["source"], 3) for p in summaries])
    assert lead["rouge1"] < 0.5 and lead["entity_recall"] < 0.5
    assert lead["hallucinated_per_output"] == 0.0 and lead["answerable"] is None

    real = [  # as read by pairs.load_pairs: no gold entities, the lexicons find them
        {"source": SOURCE, "target": "Fièvre sous amoxicilline.", "task": SUMMARY}
        | {"source_entities": None, "target_entities": None}
    ]
    scores = score_generations(real, ["Fièvre sous amoxicilline et ramipril."])
    assert scores["entity_recall"] == 1.0 and scores["hallucinated_per_output"] == 1.0
