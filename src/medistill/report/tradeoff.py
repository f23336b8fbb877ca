"""The trade-off table: evaluation files in, one row per model with its ratios to the teacher
and to the gold-only baseline, its Pareto fronts, and the best student within each budget."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from medistill.core.io import atomic_path
from medistill.core.significance import holm
from medistill.data.tasks import BASELINE_CORPUS

REQUIRED_KEYS = (
    "teacher",
    "corpus",
    "size",
    "task",
    "role",
    "f1",
    "f1_typo5",
    "params_total",
    "params_non_embedding",
    "latency_ms_b1",
)
ROBUSTNESS_KEYS = ("f1_typo5",)
LEAD_COLUMNS = (
    "teacher",
    "corpus",
    "size",
    "task",
    "role",
    "f1",
    "f1_std",
    "f1_typo5",
    "f1_retention",
    "speedup",
    "speedup_same_runtime",
    "baseline_f1",
    "f1_vs_baseline",
    "f1_vs_baseline_lower",
    "p_vs_baseline",
    "p_holm",
    "params_total",
    "params_non_embedding",
    "latency_ms_b1",
)
# Pareto fronts: column -> (score to maximise, cost to minimise), each computed within its task.
FRONTS = {
    "on_front_f1_params": ("f1", "params_total"),
    "on_front_f1_latency": ("f1", "latency_ms_b1"),
    "on_front_typo_params": ("f1_typo5", "params_total"),
}
# Budget keys of config `report.budgets` -> (column, comparison).
# The paired bootstrap against the baseline, from the evaluation JSON (NaN without a baseline):
# the one-sided lower bound and p of documents and seeds resampled, the unit, and the
# sentence-level p kept for comparison; `p_holm` is added by the table (`add_baseline_columns`).
SIGNIFICANCE_COLUMNS = (
    "f1_vs_baseline_lower",
    "p_vs_baseline",
    "p_holm",
    "bootstrap_unit",
    "p_vs_baseline_sentences",
)
# "Distillation helped" is only said when the Holm-adjusted p-value is under this.
SIGNIFICANCE_LEVEL = 0.05
BUDGET_LIMITS = {
    "max_latency_ms_b1": ("latency_ms_b1", "<="),
    "max_params": ("params_total", "<="),
    "max_params_non_embedding": ("params_non_embedding", "<="),
    "max_disk_mb": ("disk_mb", "<="),
    "min_f1": ("f1", ">="),
    "min_f1_typo5": ("f1_typo5", ">="),
    "min_f1_retention": ("f1_retention", ">="),
    "min_speedup": ("speedup", ">="),
}


def read_evaluation(path: Path, required_keys: tuple[str, ...] = REQUIRED_KEYS) -> dict:
    """Read one evaluation file, failing with the file name so a bad run is easy to find."""
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: not valid JSON ({err})") from err
    if not isinstance(record, dict):
        raise ValueError(f"{path}: expected a JSON object, got {type(record).__name__}")
    # a generative tagger is scored on the robustness sets its config names (an LLM's pass
    # over each copy may not fit the budget): its missing scores are empty cells
    optional = ROBUSTNESS_KEYS if record.get("role") == "generative" else ()
    missing = [key for key in required_keys if key not in record and key not in optional]
    if missing:
        raise ValueError(f"{path}: missing required key(s) {', '.join(missing)}")
    return record


def load_evaluations(paths: Iterable[str | Path]) -> pd.DataFrame:
    """One row per evaluation file; nested dicts become dotted columns (``per_type.DISO.f1``)."""
    records = [read_evaluation(Path(p)) for p in paths]
    if not records:
        return pd.DataFrame(columns=list(REQUIRED_KEYS))
    df = pd.json_normalize(records, sep=".")
    if "f1_std" not in df:  # evaluations written before seeds were recorded
        df["f1_std"] = np.nan
    return df


def add_relative_columns(df: pd.DataFrame) -> pd.DataFrame:
    """Add ``f1_retention`` and ``speedup`` against the teacher of the same teacher and task;
    retention against the F1 of the teacher's kept run, the one its students learnt from;
    ``speedup_same_runtime`` against that teacher in the row's own runtime.

    Absolute F1 differs a lot between tasks; ratios to the teacher make students comparable.
    A student is compared with its `reference_teacher`: a multi-teacher student with the mix's
    `init` (whose weights it starts from), a generative teacher's student with the generative
    tagger whose silver tags it learnt (that tagger's row). Rows whose reference was not
    evaluated get NaN, not a misleading number.
    """
    teachers = df[df["role"].isin(["teacher", "generative"])]
    duplicated = teachers.duplicated(["teacher", "task"])
    if duplicated.any():
        pairs = teachers.loc[duplicated, ["teacher", "task"]].to_records(index=False).tolist()
        raise ValueError(f"several teacher or tagger rows for (teacher, task) {pairs}")
    reference = teachers.set_index(["teacher", "task"])
    reference_teacher = (
        df["reference_teacher"].fillna(df["teacher"])
        if "reference_teacher" in df
        else df["teacher"]
    )
    keys = pd.MultiIndex.from_arrays([reference_teacher, df["task"]])
    # against the teacher run that taught (its kept run, first of `f1_per_seed`), not the mean
    # of its seed runs: the students never saw the others
    taught = reference["f1"].astype(float)
    if "f1_per_seed" in reference:
        kept = reference["f1_per_seed"].map(
            lambda runs: runs[0] if isinstance(runs, list) else None
        )
        taught = kept.astype(float).fillna(taught)
    teacher_f1 = taught.reindex(keys).to_numpy(dtype=float)
    teacher_latency = reference["latency_ms_b1"].reindex(keys).to_numpy(dtype=float)

    out = df.copy()
    is_teacher = out["role"] == "teacher"
    latency = out["latency_ms_b1"].astype(float)
    out["f1_retention"] = out["f1"].astype(float) / teacher_f1
    out["speedup"] = teacher_latency / latency
    out.loc[is_teacher, ["f1_retention", "speedup"]] = 1.0
    out["speedup_same_runtime"] = same_runtime_latency(df, reference_teacher) / latency
    return out


def same_runtime_latency(df: pd.DataFrame, reference_teacher: pd.Series) -> np.ndarray:
    """Per row, the latency of its reference teacher in the row's own runtime: the float
    teacher for a float (`torch`) model, the teacher compressed the same way (a
    `teacher-runtime` row) for an int8 or ONNX one, so that a speedup counts what the
    student's size gains and not what its runtime would give the teacher too. NaN where that
    teacher row is missing, and for generative rows (their engines are not the encoders')."""
    runtime = df["runtime"].fillna("torch") if "runtime" in df else pd.Series("torch", df.index)
    timed = df[df["role"].isin(["teacher", "teacher-runtime"])].assign(
        runtime=runtime[df["role"].isin(["teacher", "teacher-runtime"])]
    )
    by_runtime = timed.set_index(["teacher", "task", "runtime"])["latency_ms_b1"]
    keys = pd.MultiIndex.from_arrays([reference_teacher, df["task"], runtime])
    latency = by_runtime.reindex(keys).to_numpy(dtype=float, copy=True)
    latency[(df["role"] == "generative").to_numpy()] = np.nan
    return latency


def add_baseline_columns(df: pd.DataFrame) -> pd.DataFrame:
    """Add ``baseline_f1`` and ``f1_vs_baseline``: each distilled student against the same
    student trained on gold labels alone (corpus ``gold``, same size and task, cut from its
    `baseline_teacher`: the teacher its weights come from). The paired bootstrap's bound and
    p-value come from the evaluation (``medistill.ner.evaluate``); ``p_holm`` adjusts the p-values
    for the number of students compared in the table (Holm), float and int8 copies of one run
    counted as two comparisons.

    NaN where there is no baseline row, and on teacher and baseline rows themselves.
    """
    out = df.copy()
    is_baseline = (out["corpus"] == BASELINE_CORPUS) & (out["role"] == "student")
    baselines = out[is_baseline].set_index(["teacher", "size", "task"])["f1"]
    baseline_teacher = (
        out["baseline_teacher"].fillna(out["teacher"])
        if "baseline_teacher" in out
        else out["teacher"]
    )
    keys = pd.MultiIndex.from_arrays([baseline_teacher, out["size"], out["task"]])
    out["baseline_f1"] = baselines.reindex(keys).to_numpy(dtype=float)
    out.loc[is_baseline | (out["role"] != "student"), "baseline_f1"] = np.nan
    out["f1_vs_baseline"] = out["f1"].astype(float) - out["baseline_f1"]
    for column in SIGNIFICANCE_COLUMNS:
        if column not in out:
            out[column] = np.nan
    out["p_holm"] = holm(out["p_vs_baseline"].to_numpy(dtype=float))
    return out


def pareto_front(df: pd.DataFrame, maximize: str, minimize: str) -> pd.Series:
    """True for rows no other row beats on both axes (the models worth considering).

    A row is dominated when another is >= on ``maximize``, <= on ``minimize`` and strictly
    better on one of them, so exact duplicates of a front point all stay on the front.
    """
    best = df[maximize].to_numpy(dtype=float)
    cost = df[minimize].to_numpy(dtype=float)
    valid = ~(np.isnan(best) | np.isnan(cost))
    b, c = best[valid], cost[valid]
    # dominates[j, i]: row j dominates row i.
    no_worse = (b[:, None] >= b[None, :]) & (c[:, None] <= c[None, :])
    strictly_better = (b[:, None] > b[None, :]) | (c[:, None] < c[None, :])
    on_front = np.zeros(len(df), dtype=bool)
    on_front[valid] = ~(no_worse & strictly_better).any(axis=0)
    return pd.Series(on_front, index=df.index, name="on_front")


def pareto_front_per_task(df: pd.DataFrame, maximize: str, minimize: str) -> pd.Series:
    """Pareto front computed within each task: F1 on different tasks is not comparable."""
    fronts = [
        pareto_front(group, maximize, minimize) for _, group in df.groupby("task", dropna=False)
    ]
    if not fronts:
        return pd.Series(False, index=df.index, dtype=bool)
    return pd.concat(fronts).reindex(df.index)


def write_tradeoff(df: pd.DataFrame, path: str | Path) -> None:
    """Write the trade-off table with the key columns first and a stable row order.

    Fixed column and row order keeps the CSV diff-able between sweeps.
    """
    missing = [c for c in LEAD_COLUMNS if c not in df.columns]
    if missing:
        raise ValueError(f"cannot write trade-off table, missing column(s) {', '.join(missing)}")
    rest = sorted(c for c in df.columns if c not in LEAD_COLUMNS)
    ordered = (
        df.assign(_student=df["role"] != "teacher")
        .sort_values(["teacher", "_student", "params_total", "task", "corpus", "size"])
        .loc[:, [*LEAD_COLUMNS, *rest]]
    )
    with atomic_path(path) as tmp:
        ordered.to_csv(tmp, index=False)


def recommend(
    df: pd.DataFrame, budgets: Iterable[Mapping], min_f1_retention: float = 0.0
) -> pd.DataFrame:
    """The best student within each budget, per task: highest F1, then fewest parameters.

    A budget is a name plus limits (keys of BUDGET_LIMITS); a student missing a limited column
    does not fit. Every budget also asks for `min_f1_retention` of the teacher's F1 unless it
    sets its own: a fast student that lost the task is no recommendation. A budget no student
    fits gets a row with an empty ``model``.
    """
    floor = {"min_f1_retention": min_f1_retention} if min_f1_retention else {}
    budgets = [floor | dict(budget) for budget in budgets]
    rows = []
    students = df[df["role"] == "student"]
    tasks = sorted(df["task"].dropna().unique()) or [None]
    for task in tasks:
        group = students[students["task"] == task]
        for budget in budgets:
            fits = group["f1"].notna()
            limits = []
            for key, (column, op) in BUDGET_LIMITS.items():
                if key not in budget:
                    continue
                limits.append(f"{column} {op} {budget[key]:g}")
                values = group[column].astype(float) if column in group else np.nan
                fits &= (values <= budget[key]) if op == "<=" else (values >= budget[key])
            row = {"budget": budget["name"], "task": task, "limits": ", ".join(limits)}
            best = group[fits].sort_values(
                ["f1", "params_total", "latency_ms_b1"], ascending=[False, True, True]
            )
            if best.empty:
                rows.append(row | {"model": "", "candidates": 0})
                continue
            top = best.iloc[0]
            rows.append(
                row
                | {
                    "model": f"{top['teacher']}/{top['corpus']}/{top['size']}",
                    "candidates": int(len(best)),
                    "f1": top["f1"],
                    "f1_typo5": top["f1_typo5"],
                    "params_total": top["params_total"],
                    "latency_ms_b1": top["latency_ms_b1"],
                    "f1_retention": top.get("f1_retention", np.nan),
                }
            )
    return pd.DataFrame(rows)
