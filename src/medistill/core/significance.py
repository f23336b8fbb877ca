"""Whether a model beats its baseline, and how sure a table of such claims can be: micro F1 from
per-sentence entity counts, a paired bootstrap that resamples test documents and seed runs,
and Holm's adjustment for the number of comparisons in a table. Plain numpy: the report reads
these figures without loading models."""

from __future__ import annotations

import numpy as np


def micro_f1(counts: np.ndarray) -> np.ndarray:
    """Micro F1 from summed counts (last axis: matches, predicted, gold); 0 where undefined."""
    matches, predicted, gold = counts[..., 0], counts[..., 1], counts[..., 2]
    denominator = predicted + gold
    return np.divide(2 * matches, denominator, out=np.zeros(matches.shape), where=denominator > 0)


def paired_bootstrap(
    model_runs: list[np.ndarray],
    baseline_runs: list[np.ndarray],
    clusters: list | None = None,
    resamples: int = 1000,
    seed: int = 0,
    resample_seeds: bool = True,
) -> dict:
    """A paired bootstrap of a model against its baseline (Koehn 2004; Berg-Kirkpatrick et al.
    2012), each given as per-sentence counts of its seeds' runs, resampled at two levels:

    1. the test set, by cluster: `clusters` names each sentence's document, and a resample
       draws documents with replacement, the same ones for both models (the sentences of one
       document share a writer, a patient and a vocabulary, so resampled as if independent
       they give intervals too narrow; Davison & Hinkley 1997, 3.8). Without `clusters` every
       sentence is its own;
    2. training, with `resample_seeds`: each model's runs are drawn with replacement, so its
       seed-to-seed variance enters the interval (one run adds none: `runs` says how many
       each model had).

    A model's F1 on a resample is the mean over its drawn runs, as the reported F1 is. Returns
    the observed F1 difference; `p`, one-sided, of "the model is no better than its baseline":
    (1 + resamples where the difference is <= 0) / (1 + resamples); and `lower`, the one-sided
    95% lower bound that goes with it (the 5th percentile of the differences: above 0 when p
    is under 0.05, up to ties), with the unit resampled and how many there were.
    """
    n = len(model_runs[0])
    if any(len(run) != n for run in [*model_runs, *baseline_runs]):
        raise ValueError("paired bootstrap: both models must be scored on the same sentences")
    if clusters is not None and len(clusters) != n:
        raise ValueError(f"paired bootstrap: {len(clusters)} cluster ids for {n} sentences")
    clustered = clusters is not None
    groups = np.unique(np.asarray(clusters), return_inverse=True)[1] if clustered else np.arange(n)
    units = int(groups.max()) + 1 if n else 0
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, units, size=(resamples, units))

    def per_run(runs):  # runs x units x 3: each unit's summed counts
        stacked = np.stack(runs)
        summed = np.zeros((len(runs), units, 3), dtype=stacked.dtype)
        np.add.at(summed, (slice(None), groups), stacked)
        return summed

    def resampled_f1(runs):  # resamples: the mean F1 over (drawn) runs on each resample
        f1 = micro_f1(per_run(runs)[:, picks].sum(axis=2))  # runs x resamples
        if not resample_seeds or len(runs) == 1:
            return f1.mean(axis=0)
        drawn = rng.integers(0, len(runs), size=(resamples, len(runs)))
        return f1[drawn, np.arange(resamples)[:, None]].mean(axis=1)

    def observed_f1(runs):
        return micro_f1(np.stack(runs).sum(axis=1)).mean()

    observed = float(observed_f1(model_runs) - observed_f1(baseline_runs))
    deltas = resampled_f1(model_runs) - resampled_f1(baseline_runs)
    return {
        "delta": observed,
        "lower": float(np.percentile(deltas, 5)),
        "p": float((1 + np.sum(deltas <= 0)) / (1 + resamples)),
        "unit": "documents" if clustered else "sentences",
        "units": units,
        "runs": [len(model_runs), len(baseline_runs)],
        "resamples": resamples,
    }


def holm(p_values) -> np.ndarray:
    """Holm's step-down adjustment of p-values for the number of comparisons (1979): the k-th
    smallest of m is multiplied by (m - k + 1), made monotone, capped at 1. NaN (no test)
    stays NaN and is not counted."""
    p = np.asarray(p_values, dtype=float)
    adjusted = np.full(p.shape, np.nan)
    tested = np.flatnonzero(~np.isnan(p))
    order = tested[np.argsort(p[tested], kind="stable")]
    m = len(order)
    running = 0.0
    for rank, index in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p[index]))
        adjusted[index] = running
    return adjusted
