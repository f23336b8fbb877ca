"""The seq2seq family's Pareto plots: ROUGE-L against latency and against parameters, one marker
per route, the teacher and the lead as references.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # headless: reports are built by the workflow, never shown on screen

import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from medistill.core.io import atomic_path  # noqa: E402
from medistill.report.plots import STUDENT_MARKERS  # noqa: E402
from medistill.seq2seq.tasks import ROUTES  # noqa: E402
from medistill.seq2seq.tradeoff import BASELINE_ROLE, TEACHER_ROLE

# Plots of the fronts: file stem -> (cost column, front column, title, x-axis label).
FRONT_PLOTS = {
    "pareto_rougeL_latency": (
        "latency_ms_output",
        "on_front_latency",
        "ROUGE-L vs CPU latency per generated output",
        "latency per output, CPU, batch 1, one thread (ms, log scale)",
    ),
    "pareto_rougeL_params": (
        "params_total",
        "on_front_params",
        "ROUGE-L vs model size",
        "parameters (log scale)",
    ),
}


# One marker per route, the NER plots' student markers; a route added later gets a fourth.
_ROUTE_MARKERS = dict(zip(ROUTES, STUDENT_MARKERS, strict=False))


OTHER_ROUTE_MARKER = STUDENT_MARKERS[len(ROUTES)]


def plot_seq2seq_pareto(
    df: pd.DataFrame, cost: str, front_column: str, path: str | Path, title: str, xlabel: str
) -> None:
    """ROUGE-L (mean over seeds, std as error bars) against `cost` on a log axis: one marker
    per route, the teacher as a star, each task's front dashed and its lead baseline as a
    horizontal line (the lead has no latency nor parameters to place it on the x axis)."""
    models = df[df["role"] != BASELINE_ROLE]
    points = models[models[cost].notna() & models["rougeL"].notna() & (models[cost] > 0)]
    tasks = sorted(df["task"].dropna().unique())
    several_tasks = len(tasks) > 1
    colours = plt.get_cmap("tab10")
    fig, ax = plt.subplots(figsize=(8, 5.5))
    try:
        for t, task in enumerate(tasks):
            colour = colours(t % 10)
            prefix = f"{task}: " if several_tasks else ""
            in_task = points[points["task"] == task]
            for route, group in in_task.groupby("route", sort=False):
                is_teacher = route == TEACHER_ROLE
                marker = "*" if is_teacher else _ROUTE_MARKERS.get(route, OTHER_ROUTE_MARKER)
                ax.errorbar(
                    group[cost],
                    group["rougeL"],
                    yerr=group["rougeL_std"].fillna(0.0),
                    fmt="none",
                    ecolor=colour,
                    elinewidth=0.8,
                    alpha=0.6,
                    zorder=2,
                )
                ax.scatter(
                    group[cost],
                    group["rougeL"],
                    color=colour,
                    marker=marker,
                    s=220 if is_teacher else 50,
                    edgecolors="black",
                    linewidths=0.8 if is_teacher else 0.5,
                    label=f"{prefix}{route}",
                    zorder=4 if is_teacher else 3,
                )
            for _, row in in_task.iterrows():
                ax.annotate(
                    str(row["teacher"] if row["role"] == TEACHER_ROLE else row["size"]),
                    (row[cost], row["rougeL"]),
                    textcoords="offset points",
                    xytext=(5, 4),
                    fontsize=7,
                )
            front = in_task[in_task[front_column]].sort_values(cost)
            ax.plot(
                front[cost],
                front["rougeL"],
                linestyle="--",
                color=colour,
                linewidth=1.0,
                label=f"{prefix}Pareto front",
                zorder=1,
            )
            for _, lead in df[(df["task"] == task) & (df["role"] == BASELINE_ROLE)].iterrows():
                ax.axhline(
                    lead["rougeL"],
                    color=colour,
                    linestyle=":",
                    linewidth=1.2,
                    label=f"{prefix}lead baseline (no model)",
                    zorder=1,
                )
        if points.empty:
            ax.text(
                0.5, 0.5, f"no model with a measured {cost}", ha="center", transform=ax.transAxes
            )
        else:
            ax.set_xscale("log")
        ax.set_xlabel(xlabel)
        ax.set_ylabel("ROUGE-L F-measure (mean over seeds ± std)")
        ax.set_title(title)
        ax.grid(True, alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8, loc="best")
        fig.tight_layout()
        with atomic_path(path) as tmp:
            fig.savefig(tmp, dpi=150)
    finally:
        plt.close(fig)
