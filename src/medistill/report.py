"""Collect evaluation JSON files into one trade-off table and Pareto plots.

Every evaluation (teacher or student) writes one JSON file; this module turns the whole sweep
into ``tradeoff.csv`` plus plots of F1 against size and latency, so the question "which student
is worth deploying" can be answered at a glance.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # headless: reports are built by the workflow, never shown on screen

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from medistill.io import atomic_path  # noqa: E402

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
LEAD_COLUMNS = (
    "teacher",
    "corpus",
    "size",
    "task",
    "role",
    "f1",
    "f1_typo5",
    "f1_retention",
    "speedup",
    "params_total",
    "params_non_embedding",
    "latency_ms_b1",
)
STUDENT_MARKERS = ("o", "s", "^", "D", "v", "P", "X", "<", ">", "h")


def _read_evaluation(path: Path) -> dict:
    """Read one evaluation file, failing with the file name so a bad run is easy to find."""
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: not valid JSON ({err})") from err
    if not isinstance(record, dict):
        raise ValueError(f"{path}: expected a JSON object, got {type(record).__name__}")
    missing = [key for key in REQUIRED_KEYS if key not in record]
    if missing:
        raise ValueError(f"{path}: missing required key(s) {', '.join(missing)}")
    return record


def load_evaluations(paths: Iterable[str | Path]) -> pd.DataFrame:
    """One row per evaluation file; nested dicts become dotted columns (``per_type.DISO.f1``)."""
    records = [_read_evaluation(Path(p)) for p in paths]
    if not records:
        return pd.DataFrame(columns=list(REQUIRED_KEYS))
    return pd.json_normalize(records, sep=".")


def add_relative_columns(df: pd.DataFrame) -> pd.DataFrame:
    """Add ``f1_retention`` and ``speedup`` against the teacher of the same teacher and task.

    Absolute F1 differs a lot between tasks; ratios to the teacher make students comparable.
    Rows whose teacher was not evaluated get NaN rather than a misleading number.
    """
    teachers = df[df["role"] == "teacher"]
    duplicated = teachers.duplicated(["teacher", "task"])
    if duplicated.any():
        pairs = teachers.loc[duplicated, ["teacher", "task"]].to_records(index=False).tolist()
        raise ValueError(f"several teacher rows for (teacher, task) {pairs}")
    reference = teachers.set_index(["teacher", "task"])
    keys = pd.MultiIndex.from_frame(df[["teacher", "task"]])
    teacher_f1 = reference["f1"].reindex(keys).to_numpy(dtype=float)
    teacher_latency = reference["latency_ms_b1"].reindex(keys).to_numpy(dtype=float)

    out = df.copy()
    is_teacher = out["role"] == "teacher"
    out["f1_retention"] = out["f1"].astype(float) / teacher_f1
    out["speedup"] = teacher_latency / out["latency_ms_b1"].astype(float)
    out.loc[is_teacher, ["f1_retention", "speedup"]] = 1.0
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


def _pareto_front_per_task(df: pd.DataFrame, maximize: str, minimize: str) -> pd.Series:
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


def _scatter_points(ax, df: pd.DataFrame, x: str, y: str) -> None:
    """Colour by teacher, marker by corpus, star for teachers, each point labelled by size."""
    colours = plt.get_cmap("tab10")
    teachers = sorted(df["teacher"].unique())
    corpora = sorted(df.loc[df["role"] != "teacher", "corpus"].unique())
    for (teacher, role, corpus), group in df.groupby(["teacher", "role", "corpus"]):
        is_teacher = role == "teacher"
        ax.scatter(
            group[x],
            group[y],
            color=colours(teachers.index(teacher) % 10),
            marker="*" if is_teacher else STUDENT_MARKERS[corpora.index(corpus) % 10],
            s=160 if is_teacher else 50,
            edgecolors="black",
            linewidths=0.5,
            label=f"{teacher} / {'teacher' if is_teacher else corpus}",
            zorder=3,
        )
    for _, row in df.iterrows():
        ax.annotate(
            str(row["size"]),
            (row[x], row[y]),
            textcoords="offset points",
            xytext=(4, 4),
            fontsize=7,
        )


def _draw_fronts(ax, df: pd.DataFrame, x: str, y: str) -> None:
    """Join each task's front points, left to right, with a dashed line."""
    on_front = _pareto_front_per_task(df, maximize=y, minimize=x)
    for i, (_, front) in enumerate(df[on_front].groupby("task")):
        front = front.sort_values(x)
        label = "Pareto front" if i == 0 else None
        ax.plot(front[x], front[y], linestyle="--", color="grey", label=label, zorder=2)


def plot_pareto(
    df: pd.DataFrame,
    x: str,
    y: str,
    path: str | Path,
    log_x: bool = True,
    title: str | None = None,
) -> None:
    """Plot ``y`` (higher is better) against ``x`` (lower is better) with the Pareto front.

    Rows missing ``x`` or ``y`` are left out. The front (maximize ``y``, minimize ``x``) is
    computed within each task and drawn as one dashed line per task.
    """
    points = df[df[x].notna() & df[y].notna()]
    fig, ax = plt.subplots(figsize=(8, 5.5))
    try:
        _scatter_points(ax, points, x, y)
        _draw_fronts(ax, points, x, y)
        if log_x:
            ax.set_xscale("log")
        ax.set_xlabel(x)
        ax.set_ylabel(y)
        if title:
            ax.set_title(title)
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=7, loc="best")
        fig.tight_layout()
        with atomic_path(path) as tmp:
            fig.savefig(tmp, dpi=150)
    finally:
        plt.close(fig)


def build_report(eval_paths: Iterable[str | Path], out_dir: str | Path) -> pd.DataFrame:
    """Build ``tradeoff.csv`` and the Pareto plots in ``out_dir``; return the table.

    The returned table (and the CSV) carry ``on_front_f1_params`` and ``on_front_f1_latency``,
    each computed within its task.
    """
    df = add_relative_columns(load_evaluations(eval_paths))
    if df.empty:
        raise ValueError("no evaluation files to report on")
    out_dir = Path(out_dir)
    df["on_front_f1_params"] = _pareto_front_per_task(df, maximize="f1", minimize="params_total")
    df["on_front_f1_latency"] = _pareto_front_per_task(df, maximize="f1", minimize="latency_ms_b1")
    write_tradeoff(df, out_dir / "tradeoff.csv")
    for suffix in ("png", "svg"):
        plot_pareto(
            df, "params_total", "f1", out_dir / f"pareto_f1_params.{suffix}", title="F1 vs size"
        )
    plot_pareto(df, "latency_ms_b1", "f1", out_dir / "pareto_f1_latency.png", title="F1 vs latency")
    return df
