"""The report's plots (matplotlib, headless): F1 against size and latency with the Pareto
fronts, robustness per perturbation, and training curves."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # headless: reports are built by the workflow, never shown on screen

import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from medistill.core.io import atomic_path  # noqa: E402
from medistill.report.tradeoff import pareto_front_per_task  # noqa: E402

STUDENT_MARKERS = ("o", "s", "^", "D", "v", "P", "X", "<", ">", "h")
# Plots of the fronts: file stem -> (x, y, title).
FRONT_PLOTS = {
    "pareto_f1_params": ("params_total", "f1", "F1 vs parameters"),
    "pareto_f1_latency": ("latency_ms_b1", "f1", "F1 vs CPU latency (batch 1)"),
    "pareto_typo_params": ("params_total", "f1_typo5", "Robust F1 (5% typos) vs parameters"),
}


# Legend entries of the rows that are not students (whose entry names their corpus).
ROLE_LEGENDS = {"teacher": "teacher", "teacher-runtime": "teacher, compressed"}


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
            label=f"{teacher} / {ROLE_LEGENDS.get(role, corpus)}",
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
    on_front = pareto_front_per_task(df, maximize=y, minimize=x)
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
        for _, teacher in points[points["role"] == "teacher"].iterrows():
            ax.axhline(teacher[y], color="black", linestyle=":", linewidth=0.8, zorder=1)
        if log_x:
            ax.set_xscale("log")
        ax.set_xlabel(x)
        ax.set_ylabel(y)
        if title:
            ax.set_title(title)
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=7, loc="best")
        fig.tight_layout()
        _save(fig, Path(path))
    finally:
        plt.close(fig)


def _save(fig, path: Path) -> None:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=150)


def perturbation_columns(df: pd.DataFrame) -> list[str]:
    """``f1`` (clean) then the ``f1_<perturbation>`` score columns present (``f1_typo5``, ...)."""
    from medistill.data.tasks import ROBUSTNESS_SETS

    return ["f1"] + sorted(f"f1_{n}" for n in ROBUSTNESS_SETS if f"f1_{n}" in df.columns)


def plot_robustness(df: pd.DataFrame, path: str | Path) -> None:
    """F1 under each perturbation against size, and the share of clean F1 each one keeps."""
    columns = perturbation_columns(df)
    colours = plt.get_cmap("tab10")
    fig, (ax_abs, ax_rel) = plt.subplots(1, 2, figsize=(11, 4.5))
    try:
        for (teacher, corpus), group in df.groupby(["teacher", "corpus"]):
            group = group.sort_values("params_total")
            is_teacher = corpus == "teacher"
            for i, column in enumerate(columns):
                style = {
                    "color": colours(i % 10),
                    "marker": "*" if is_teacher else "o",
                    "markersize": 12 if is_teacher else 5,
                    "linestyle": "none" if is_teacher else "-",
                }
                label = f"{column} - {teacher}/{corpus}"
                ax_abs.plot(group["params_total"], group[column], label=label, **style)
                retained = group[column].astype(float) / group["f1"].astype(float)
                ax_rel.plot(group["params_total"], retained, label=label, **style)
        for ax, ylabel, title in (
            (ax_abs, "F1", "F1 per perturbation vs size"),
            (ax_rel, "F1 / clean F1", "Share of clean F1 kept"),
        ):
            ax.set_xscale("log")
            ax.set_xlabel("params_total")
            ax.set_ylabel(ylabel)
            ax.set_title(title)
            ax.grid(True, alpha=0.3)
        ax_abs.legend(fontsize=7, loc="best")
        fig.tight_layout()
        _save(fig, Path(path))
    finally:
        plt.close(fig)


def model_label(model_dir: str | Path) -> str:
    """``teacher/corpus/size`` for a student folder (``students/TEACHER/TASK/CORPUS/SIZE/model``),
    ``teacher (teacher)`` for a teacher's."""
    parts = Path(model_dir).parts
    if "students" in parts:
        i = len(parts) - 1 - parts[::-1].index("students")
        return "/".join((parts[i + 1], *parts[i + 3 : i + 5]))
    if "teachers" in parts:
        i = len(parts) - 1 - parts[::-1].index("teachers")
        return f"{parts[i + 1]} (teacher)"
    return Path(model_dir).name


def load_histories(model_dirs: Iterable[str | Path]) -> dict[str, list[dict]]:
    """The loss history each training step saved next to its model, by model label."""
    histories = {}
    for folder in model_dirs:
        path = Path(folder) / "training_history.json"
        if path.is_file():
            histories[model_label(folder)] = json.loads(path.read_text(encoding="utf-8"))
    return histories


def plot_training_curves(histories: Mapping[str, list[dict]], path: str | Path) -> None:
    """Training loss against step: teacher fine-tuning on the left, distillation on the right."""
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.5))
    try:
        panels = (
            (axes[0], "Teacher fine-tuning (cross-entropy)", True),
            (axes[1], "Student distillation (KL x T^2 + CE)", False),
        )
        for ax, title, teachers in panels:
            drawn = 0
            for label, history in sorted(histories.items()):
                if label.endswith("(teacher)") != teachers or not history:
                    continue
                points = [p for p in history if "loss" in p]  # not the dev F1 entries
                ax.plot(
                    [p["step"] for p in points],
                    [p["loss"] for p in points],
                    marker=".",
                    label=label,
                )
                drawn += 1
            if drawn:
                ax.legend(fontsize=7, loc="best")
            else:
                ax.text(0.5, 0.5, "no training history", ha="center", transform=ax.transAxes)
            ax.set_title(title)
            ax.set_xlabel("step")
            ax.set_ylabel("training loss")
            ax.grid(True, alpha=0.3)
        fig.tight_layout()
        _save(fig, Path(path))
    finally:
        plt.close(fig)
