"""Entity counts per sentence agree with seqeval, and the paired bootstrap says "better" only
when a model is better on the same sentences."""

from __future__ import annotations

import random

import numpy as np
import pytest

from medistill.scoring import (
    micro_f1,
    ner_scores,
    paired_bootstrap,
    sentence_counts,
    with_unaligned_lines,
)

TYPES = ("DISO", "CHEM")


def random_tags(rng: random.Random, length: int) -> list[str]:
    return [
        rng.choice(["O", "O", "O", *(f"{p}-{t}" for t in TYPES for p in "BI")])
        for _ in range(length)
    ]


def noisy(rng: random.Random, tags: list[str], rate: float) -> list[str]:
    return [rng.choice(["O", "B-DISO", "I-CHEM"]) if rng.random() < rate else t for t in tags]


def test_summed_counts_give_seqeval_micro_f1():
    rng = random.Random(0)
    gold = [random_tags(rng, rng.randint(1, 12)) for _ in range(200)]
    predicted = [noisy(rng, tags, 0.3) for tags in gold]  # stray I- tags included
    counts = sentence_counts(gold, predicted)
    assert counts.shape == (200, 3)
    assert micro_f1(counts.sum(axis=0)) == pytest.approx(ner_scores(gold, predicted)["f1"])


def test_bootstrap_finds_a_better_model_and_no_difference_between_equals():
    rng = random.Random(1)
    gold = [random_tags(rng, 10) for _ in range(300)]
    runs = {
        rate: [sentence_counts(gold, [noisy(rng, t, rate) for t in gold]) for _ in range(3)]
        for rate in (0.05, 0.4)
    }
    better = paired_bootstrap(runs[0.05], runs[0.4], resamples=500, seed=0)
    assert better["delta"] > 0.1 and better["p"] < 0.01
    assert better["ci"][0] > 0 and better["ci"][0] < better["delta"] < better["ci"][1]
    worse = paired_bootstrap(runs[0.4], runs[0.05], resamples=500, seed=0)
    assert worse["p"] > 0.99
    same = paired_bootstrap(runs[0.4], runs[0.4], resamples=500, seed=0)
    assert same["delta"] == 0 and same["p"] == 1.0
    # Seeded: the same call gives the same interval.
    assert paired_bootstrap(runs[0.05], runs[0.4], resamples=500, seed=0) == better


def test_bootstrap_needs_the_same_sentences():
    with pytest.raises(ValueError, match="same sentences"):
        paired_bootstrap([np.zeros((3, 3))], [np.zeros((4, 3))])


def test_an_output_line_that_names_no_mention_lowers_precision_like_a_wrong_mention():
    from medistill.generative_tagging import tag_outputs

    words = ["Toux", "et", "fièvre", "sous", "aspirine", "."]
    gold = [["B-SOSY", "O", "B-SOSY", "O", "B-CHEM", "O"]]
    honest = "SOSY: Toux\nSOSY: fièvre"
    rambling = honest + "\nSOSY: douleur thoracique\nCHEM aspirine\nDRUG: aspirine"
    results = {}
    for name, output in (("honest", honest), ("rambling", rambling)):
        tags, per_sentence = tag_outputs([output], [{"words": words}], ["SOSY", "CHEM"])
        assert tags == [["B-SOSY", "O", "B-SOSY", "O", "O", "O"]]  # the same aligned mentions
        results[name] = with_unaligned_lines(
            ner_scores(gold, tags),
            sentence_counts(gold, tags),
            [c.unaligned() for c in per_sentence],
        )
    (honest_scores, _), (rambling_scores, counts) = results["honest"], results["rambling"]
    assert honest_scores["precision"] == 1.0 and honest_scores["unaligned_lines"] == 0
    # not found, malformed and of an unknown type: three false positives, recall unchanged
    assert rambling_scores["unaligned_lines"] == 3
    assert rambling_scores["precision"] == pytest.approx(2 / 5)
    assert rambling_scores["recall"] == honest_scores["recall"] == pytest.approx(2 / 3)
    assert rambling_scores["f1"] == pytest.approx(2 * 2 / (5 + 3))
    assert rambling_scores["f1_aligned_only"] == honest_scores["f1"]
    # the bootstrap's sentence counts carry the same false positives
    assert counts.tolist() == [[2, 5, 3]]
