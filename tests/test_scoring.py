"""Entity counts per sentence agree with seqeval; the paired bootstrap says "better" only when a
model is better on the same sentences, and, resampling documents and seeds, holds its level on
clustered test sets where resampling sentences does not; Holm adjusts a table's p-values."""

from __future__ import annotations

import random

import numpy as np
import pytest

from medistill.core.significance import holm, micro_f1, paired_bootstrap
from medistill.ner.scoring import ner_scores, sentence_counts, with_unaligned_lines

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
    assert 0 < better["lower"] < better["delta"]  # the one-sided bound agrees with p
    assert better["unit"] == "sentences" and better["units"] == 300 and better["runs"] == [3, 3]
    worse = paired_bootstrap(runs[0.4], runs[0.05], resamples=500, seed=0)
    assert worse["p"] > 0.99 and worse["lower"] < 0
    # the same runs on both sides: only the seeds drawn differ, half the differences are <= 0
    same = paired_bootstrap(runs[0.4], runs[0.4], resamples=500, seed=0)
    assert same["delta"] == 0 and 0.3 < same["p"] < 0.8
    # without seed resampling, the same runs give no difference at all
    fixed = paired_bootstrap(runs[0.4], runs[0.4], resamples=500, seed=0, resample_seeds=False)
    assert fixed["p"] == 1.0
    # Seeded: the same call gives the same interval.
    assert paired_bootstrap(runs[0.05], runs[0.4], resamples=500, seed=0) == better


def test_bootstrap_needs_the_same_sentences():
    with pytest.raises(ValueError, match="same sentences"):
        paired_bootstrap([np.zeros((3, 3))], [np.zeros((4, 3))])
    with pytest.raises(ValueError, match="2 cluster ids for 3 sentences"):
        paired_bootstrap([np.zeros((3, 3))], [np.zeros((3, 3))], clusters=["a", "b"])


def simulated_twins(rng, advantage: float, documents: int = 30, per_document: int = 12):
    """Per-sentence counts of a model and its twin, 3 seed runs each, on clustered sentences:
    each document favours one of the two by a random amount (mean `advantage` for the model)
    and each run has its own offset, as documents and seeds do in real test sets."""
    doc_effect = rng.normal(advantage, 0.12, documents)
    clusters = np.repeat(np.arange(documents), per_document)
    gold = rng.poisson(2.0, documents * per_document) + 1

    def runs(sign):
        out = []
        for _ in range(3):
            rate = np.clip(0.6 + sign * doc_effect[clusters] / 2 + rng.normal(0, 0.03), 0, 1)
            matches = rng.binomial(gold, rate)
            predicted = matches + rng.poisson(0.5, len(gold))
            out.append(np.stack([matches, predicted, gold], axis=1))
        return out

    return runs(+1), runs(-1), clusters.tolist()


def test_the_clustered_bootstrap_holds_its_level_where_the_sentence_one_does_not():
    rng = np.random.default_rng(0)
    rejections = {"documents": 0, "sentences": 0}
    repeats = 200
    for repeat in range(repeats):
        model, twin, clusters = simulated_twins(rng, advantage=0.0)
        clustered = paired_bootstrap(model, twin, clusters, resamples=400, seed=repeat)
        by_sentence = paired_bootstrap(
            model, twin, resamples=400, seed=repeat, resample_seeds=False
        )
        rejections["documents"] += clustered["p"] < 0.05
        rejections["sentences"] += by_sentence["p"] < 0.05
        if abs(clustered["p"] - 0.05) > 0.01:  # the bound and the test agree (up to the +1)
            assert (clustered["lower"] > 0) == (clustered["p"] < 0.05)
    # equal models: about 5% of repeats "significant" when documents and seeds are resampled,
    # several times that when sentences are treated as independent
    assert rejections["documents"] / repeats <= 0.09
    assert rejections["sentences"] / repeats >= 0.15
    # a real difference is still found
    found = 0
    for repeat in range(40):
        model, twin, clusters = simulated_twins(rng, advantage=0.12)
        found += paired_bootstrap(model, twin, clusters, resamples=400, seed=repeat)["p"] < 0.05
    assert found / 40 >= 0.8
    result = paired_bootstrap(model, twin, clusters, resamples=10)
    assert result["unit"] == "documents" and result["units"] == 30


def test_holm_adjusts_for_the_number_of_comparisons_and_skips_untested_rows():
    adjusted = holm([0.01, 0.04, 0.03, np.nan])
    assert adjusted[:3] == pytest.approx([0.03, 0.06, 0.06]) and np.isnan(adjusted[3])
    assert holm([0.5, 0.9]) == pytest.approx([1.0, 1.0])  # capped at 1
    assert holm([0.02]) == pytest.approx([0.02])


def test_an_output_line_that_names_no_mention_lowers_precision_like_a_wrong_mention():
    from medistill.generative.outputs import tag_outputs

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
