"""The seq2seq family's trade-off table: its evaluation files in, ``tradeoff.csv`` out.

A seq2seq student is made from its teacher by one of three routes (Shleifer & Rush, 2020):
``shrink`` (layers copied from the teacher, fine-tuned on the gold pairs alone), ``sequence``
(trained on the teacher's outputs on a transfer corpus too) and ``word`` (plus a KL term towards
the teacher's next-token distribution). Each model is compared with two references of its task:

- its teacher: ``rougeL_retention`` (share of the teacher's ROUGE-L kept) and ``speedup``
  (teacher latency / its latency, per generated output at batch 1 on one CPU thread);
- the lead baseline (the report's first sentences, no model at all): ``rougeL_vs_lead``. A
  teacher that does not beat the lead is not worth distilling, whatever its students score.

The Pareto fronts (ROUGE-L up; latency or parameters down) are computed within each task, since
ROUGE-L of different tasks is not comparable, and leave the lead out: it costs no parameters
and no model time, so it would sit on every front without being a model one could deploy.

The NER report (`medistill.report.tradeoff`) works on F1 and other keys; this module reuses its
Pareto front and its evaluation reader, not its table.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from medistill.core.io import atomic_path
from medistill.report.tradeoff import pareto_front_per_task, read_evaluation
from medistill.seq2seq.tasks import ROUTES

FAMILY = "seq2seq"


REQUIRED_KEYS = (
    "family",
    "task",
    "kind",
    "teacher",
    "corpus",
    "route",
    "size",
    "role",
    "rougeL",
    "entity_recall",
    "latency_ms_output",
    "params_total",
)


# Keys that are numbers (or null); read as floats so a null is NaN, not None. params_total is
# an integer everywhere (0 for the lead) and stays one in the CSV.
NUMERIC_KEYS = (
    "rouge1",
    "rouge2",
    "rougeL",
    "rougeL_std",
    "entity_recall",
    "entity_precision",
    "hallucinated_per_output",
    "answerable",
    "latency_ms_output",
    "tokens_per_s",
    "disk_mb",
    "energy_kwh_train",
    "co2_kg_train",
)


TEACHER_ROLE, STUDENT_ROLE, BASELINE_ROLE = "teacher", "student", "baseline"


# A student this much faster than its teacher is worth recommending; a smaller gain rarely pays
# for the ROUGE-L it costs.
MIN_SPEEDUP = 2.0


# Pareto fronts: column -> (score to maximise, cost to minimise), each within its task.
FRONTS = {
    "on_front_latency": ("rougeL", "latency_ms_output"),
    "on_front_params": ("rougeL", "params_total"),
}


LEAD_COLUMNS = (
    "task",
    "kind",
    "teacher",
    "route",
    "corpus",
    "size",
    "role",
    "rougeL",
    "rougeL_std",
    "rougeL_retention",
    "speedup",
    "rougeL_vs_lead",
    "entity_recall",
    "entity_recall_vs_lead",
    "entity_precision",
    "hallucinated_per_output",
    "answerable",
    "latency_ms_output",
    "params_total",
    "disk_mb",
    *FRONTS,
)


# Row order of the table: references first, then the three routes of one size side by side.
_ROLE_ORDER = {TEACHER_ROLE: 0, BASELINE_ROLE: 1, STUDENT_ROLE: 2}
ROUTE_ORDER = {route: i for i, route in enumerate(ROUTES)}


def _read_evaluation(path: Path) -> dict:
    """`report.tradeoff.read_evaluation` with the seq2seq keys, and of the seq2seq family."""
    record = read_evaluation(path, REQUIRED_KEYS)
    if record["family"] != FAMILY:
        # An NER evaluation given by mistake would otherwise fail later on a missing column.
        raise ValueError(f"{path}: family is {record['family']!r}, expected {FAMILY!r}")
    return record


def load_seq2seq_evaluations(paths: Iterable[str | Path]) -> pd.DataFrame:
    """One row per evaluation file; ``robustness.<set>.<metric>`` becomes ``<metric>_<set>``
    (``rougeL_typo5``), named like the NER table's ``f1_typo5``, and ``free_decoding.<metric>``
    (the clean scores decoded without the restriction) ``<metric>_free``."""
    records = [_read_evaluation(Path(p)) for p in paths]
    if not records:
        return pd.DataFrame(columns=list(REQUIRED_KEYS))
    df = pd.json_normalize(records, sep=".")
    renames = {}
    for column in df.columns:
        parts = column.split(".")
        if len(parts) == 3 and parts[0] == "robustness":
            renames[column] = f"{parts[2]}_{parts[1]}"
        elif len(parts) == 2 and parts[0] == "free_decoding":
            renames[column] = f"{parts[1]}_free"
    # A set written as null ("robustness.unseen": null) leaves a column with nothing in it.
    leftovers = [c for c in df.columns if c.startswith("robustness") and c not in renames]
    df = df.rename(columns=renames).drop(columns=leftovers)
    for column in [*NUMERIC_KEYS, *renames.values()]:
        if column in df:
            df[column] = df[column].astype(float)
        elif column in LEAD_COLUMNS:
            df[column] = np.nan  # an older evaluation without it: an empty cell, not a crash
    return df


def _references(df: pd.DataFrame, role: str, keys: list[str]) -> pd.DataFrame:
    """The rows of `role` indexed by `keys`, refusing two of them for one key (which to use?)."""
    rows = df[df["role"] == role]
    duplicated = rows.duplicated(keys)
    if duplicated.any():
        found = rows.loc[duplicated, keys].to_records(index=False).tolist()
        raise ValueError(f"several {role} rows for {tuple(keys)} {found}")
    return rows.set_index(keys)


def add_seq2seq_relative_columns(df: pd.DataFrame) -> pd.DataFrame:
    """Add ``rougeL_retention`` and ``speedup`` (against the teacher of the same teacher and
    task) and ``rougeL_vs_lead`` / ``entity_recall_vs_lead`` (against the task's lead row).

    Rows with no such reference get NaN, not a misleading number; the lead has no teacher, so
    no retention and no speedup.
    """
    teachers = _references(df, TEACHER_ROLE, ["teacher", "task"])
    teacher_keys = pd.MultiIndex.from_frame(df[["teacher", "task"]])
    teacher_rouge = teachers["rougeL"].reindex(teacher_keys).to_numpy(dtype=float)
    teacher_latency = teachers["latency_ms_output"].reindex(teacher_keys).to_numpy(dtype=float)
    leads = _references(df, BASELINE_ROLE, ["task"])

    out = df.copy()
    out["rougeL_retention"] = out["rougeL"] / teacher_rouge
    out["speedup"] = teacher_latency / out["latency_ms_output"]
    out.loc[out["role"] == TEACHER_ROLE, ["rougeL_retention", "speedup"]] = 1.0
    out.loc[out["role"] == BASELINE_ROLE, ["rougeL_retention", "speedup"]] = np.nan
    for metric in ("rougeL", "entity_recall"):
        lead = leads[metric].reindex(out["task"]).to_numpy(dtype=float)
        out[f"{metric}_vs_lead"] = out[metric] - lead
    return out


def add_fronts(df: pd.DataFrame) -> pd.DataFrame:
    """Add one boolean ``on_front_*`` column per entry of FRONTS, within each task, lead left
    out (it would sit on every front at no cost)."""
    out = df.copy()
    models = out[out["role"] != BASELINE_ROLE]
    for column, (score, cost) in FRONTS.items():
        on_front = pareto_front_per_task(models, maximize=score, minimize=cost)
        out[column] = on_front.reindex(out.index, fill_value=False).astype(bool)
    return out


def write_seq2seq_tradeoff(df: pd.DataFrame, path: str | Path) -> None:
    """Write the table with the key columns first and a stable row order, so the CSV can be
    diffed between sweeps: per task, teachers, then the lead, then students by size with the
    three routes of a size next to each other."""
    rest = sorted(c for c in df.columns if c not in LEAD_COLUMNS)
    ordered = (
        df.assign(
            _role=df["role"].map(_ROLE_ORDER).fillna(len(_ROLE_ORDER)),
            _route=df["route"].map(ROUTE_ORDER).fillna(len(ROUTE_ORDER)),
        )
        .sort_values(
            ["task", "_role", "teacher", "params_total", "size", "_route", "corpus"],
            kind="stable",
        )
        .loc[:, [*LEAD_COLUMNS, *rest]]
    )
    with atomic_path(path) as tmp:
        ordered.to_csv(tmp, index=False)


def model_name(row: Mapping) -> str:
    """``teacher/route/corpus/size`` of a student; the teacher's or the lead's name otherwise."""
    if row["role"] == STUDENT_ROLE:
        return f"{row['teacher']}/{row['route']}/{row['corpus']}/{row['size']}"
    return str(row["teacher"])


def _mean_std(row: Mapping) -> str:
    std = row.get("rougeL_std", np.nan)
    return f"{row['rougeL']:.3f}" + ("" if pd.isna(std) else f" ± {std:.3f}")


def compare_routes(df: pd.DataFrame) -> pd.DataFrame:
    """Per task, teacher and size: ROUGE-L mean ± std over seeds of each route, the best route,
    its margin over the next one and whether that margin is larger than the seeds' spread.

    Every route gets the same student shape and the same training steps, so the difference is
    the route's. Where a route was trained on several transfer corpora its best one stands for
    it, named in brackets.
    """
    students = df[(df["role"] == STUDENT_ROLE) & df["rougeL"].notna()]
    routes = [*ROUTES, *sorted(set(students["route"]) - set(ROUTES))]
    rows = []
    for (task, teacher, size), group in students.groupby(["task", "teacher", "size"], sort=False):
        row: dict = {"task": task, "teacher": teacher, "size": size}
        best_per_route = {}
        for route in routes:
            trained = group[group["route"] == route].sort_values("rougeL", ascending=False)
            if trained.empty:
                row[route] = ""
                continue
            top = trained.iloc[0]
            best_per_route[route] = top
            several = trained["corpus"].nunique() > 1
            row[route] = _mean_std(top) + (f" ({top['corpus']})" if several else "")
        ranked = sorted(best_per_route.items(), key=lambda item: -item[1]["rougeL"])
        row["best route"] = ranked[0][0]
        row["margin"] = np.nan
        row["beyond seed std"] = ""
        if len(ranked) > 1:
            (_, first), (_, second) = ranked[:2]
            row["margin"] = first["rougeL"] - second["rougeL"]
            stds = [r.get("rougeL_std") for r in (first, second)]
            stds = [std for std in stds if not pd.isna(std)]
            if stds:
                # A margin inside the seeds' own spread is no evidence that one route is better.
                row["beyond seed std"] = "yes" if row["margin"] > max(stds) else "no"
        row["_params"] = group["params_total"].min()
        rows.append(row)
    if not rows:
        return pd.DataFrame(columns=["task", "teacher", "size", *routes, "best route"])
    table = pd.DataFrame(rows).sort_values(["task", "teacher", "_params", "size"], kind="stable")
    return table.drop(columns="_params").reset_index(drop=True)


def best_students(df: pd.DataFrame, min_speedup: float = MIN_SPEEDUP) -> pd.DataFrame:
    """Per task, the student with the highest ROUGE-L among those at least `min_speedup` times
    faster than their teacher (ties: fewer parameters, then lower latency). ``model`` is empty
    where none is that fast; ``fastest`` is then the best speedup any student reached."""
    rows = []
    for task in sorted(df["task"].dropna().unique()):
        students = df[(df["task"] == task) & (df["role"] == STUDENT_ROLE)]
        fast = students[(students["speedup"] >= min_speedup) & students["rougeL"].notna()]
        row = {"task": task, "model": "", "fastest": students["speedup"].max()}
        if not fast.empty:
            top = fast.sort_values(
                ["rougeL", "params_total", "latency_ms_output"], ascending=[False, True, True]
            ).iloc[0]
            row |= {
                "model": model_name(top),
                "rougeL": top["rougeL"],
                "rougeL_retention": top["rougeL_retention"],
                "speedup": top["speedup"],
                "params_total": top["params_total"],
            }
        rows.append(row)
    return pd.DataFrame(rows)


def teacher_vs_lead(df: pd.DataFrame) -> pd.DataFrame:
    """Per task and teacher: the teacher's ROUGE-L and entity recall beside the lead's."""
    columns = ["rougeL", "entity_recall", "rougeL_vs_lead", "entity_recall_vs_lead"]
    teachers = df[df["role"] == TEACHER_ROLE].sort_values(["task", "teacher"])
    table = teachers.loc[:, ["task", "teacher", *columns]].rename(
        columns={"rougeL": "teacher rougeL", "entity_recall": "teacher entity_recall"}
    )
    leads = df[df["role"] == BASELINE_ROLE].set_index("task")
    table.insert(3, "lead rougeL", leads["rougeL"].reindex(table["task"]).to_numpy(dtype=float))
    table.insert(
        5,
        "lead entity_recall",
        leads["entity_recall"].reindex(table["task"]).to_numpy(dtype=float),
    )
    return table.reset_index(drop=True)
