"""Build the sweep's report: every evaluation file in, ``tradeoff.csv``, the plots and
``report.html`` out, so the question "which student is worth deploying" can be answered at a
glance; and log it as an MLflow run of the sweep.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

import pandas as pd

from medistill.core.io import atomic_write
from medistill.core.schema import with_schema_defaults
from medistill.report.html import environment, render_html
from medistill.report.plots import (
    FRONT_PLOTS,
    load_histories,
    plot_pareto,
    plot_robustness,
    plot_training_curves,
)
from medistill.report.tradeoff import (
    FRONTS,
    add_baseline_columns,
    add_relative_columns,
    load_evaluations,
    pareto_front_per_task,
    recommend,
    write_tradeoff,
)


def build_report(
    eval_paths: Iterable[str | Path],
    out_dir: str | Path,
    config: Mapping | None = None,
    model_dirs: Iterable[str | Path] = (),
) -> pd.DataFrame:
    """Build ``tradeoff.csv``, the plots (PNG and SVG) and ``report.html`` in ``out_dir``.

    The returned table (and the CSV) carry one ``on_front_*`` column per entry of FRONTS, each
    computed within its task. ``model_dirs`` are the trained models, whose saved loss histories
    make the training-curve plot; ``config`` gives the budgets, licences and the config shown.
    """
    df = add_baseline_columns(add_relative_columns(load_evaluations(eval_paths)))
    if df.empty:
        raise ValueError("no evaluation files to report on")
    out_dir = Path(out_dir)
    for column, (score, cost) in FRONTS.items():
        df[column] = pareto_front_per_task(df, maximize=score, minimize=cost)
    write_tradeoff(df, out_dir / "tradeoff.csv")
    plots: dict[str, Path] = {}
    histories = load_histories(model_dirs)
    for suffix in ("png", "svg"):
        for stem, (x, y, title) in FRONT_PLOTS.items():
            plot_pareto(df, x, y, out_dir / f"{stem}.{suffix}", title=title)
            plots[title] = out_dir / f"{stem}.png"
        plot_robustness(df, out_dir / f"robustness.{suffix}")
        plot_training_curves(histories, out_dir / f"training_curves.{suffix}")
    plots["Robustness per perturbation vs size"] = out_dir / "robustness.png"
    plots["Training curves"] = out_dir / "training_curves.png"
    settings = with_schema_defaults((config or {}).get("report", {}), "report")
    recommendations = recommend(df, settings["budgets"], settings["min_f1_retention"])
    page = render_html(df, plots, recommendations, config, environment())
    with atomic_write(out_dir / "report.html") as handle:
        handle.write(page)
    return df


def log_report(
    config: Mapping,
    table: pd.DataFrame,
    artifacts: Iterable[str | Path],
    log_run: Callable[..., object],
) -> None:
    """Log the report as an MLflow run of the sweep: its headline figures and its files."""
    students = table[table["role"] == "student"]
    sweep = config["sweep"]
    log_run(
        "report",
        params={"report": config["report"], "sweep": sweep},
        metrics={
            "n_models": len(table),
            "best_student_f1": students["f1"].max() if len(students) else float("nan"),
            "best_student_f1_retention": (
                students["f1_retention"].max() if len(students) else float("nan")
            ),
        },
        tags={
            "stage": "report",
            "task": sweep["task"],
            "teacher": ",".join(sweep["teachers"]),
            "corpus": ",".join(sweep["corpora"]),
            "size": ",".join(sweep["sizes"]),
        },
        artifacts=[Path(p) for p in artifacts if Path(p).is_file()],
    )
