"""Collect evaluation JSON files into one trade-off table and Pareto plots.

Every evaluation (teacher or student) writes one JSON file; this module turns the whole sweep
into ``tradeoff.csv`` plus plots of F1 against size and latency, so the question "which student
is worth deploying" can be answered at a glance.
"""

from __future__ import annotations

import base64
import html
import json
import os
import platform
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # headless: reports are built by the workflow, never shown on screen

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from medistill.io import atomic_path, atomic_write  # noqa: E402
from medistill.tasks import BASELINE_CORPUS  # noqa: E402

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
    "f1_std",
    "f1_typo5",
    "f1_retention",
    "speedup",
    "baseline_f1",
    "f1_vs_baseline",
    "params_total",
    "params_non_embedding",
    "latency_ms_b1",
)
STUDENT_MARKERS = ("o", "s", "^", "D", "v", "P", "X", "<", ">", "h")
# Pareto fronts: column -> (score to maximise, cost to minimise), each computed within its task.
FRONTS = {
    "on_front_f1_params": ("f1", "params_total"),
    "on_front_f1_latency": ("f1", "latency_ms_b1"),
    "on_front_typo_params": ("f1_typo5", "params_total"),
}
# Plots of the fronts: file stem -> (x, y, title).
FRONT_PLOTS = {
    "pareto_f1_params": ("params_total", "f1", "F1 vs parameters"),
    "pareto_f1_latency": ("latency_ms_b1", "f1", "F1 vs CPU latency (batch 1)"),
    "pareto_typo_params": ("params_total", "f1_typo5", "Robust F1 (5% typos) vs parameters"),
}
# Budget keys of config `report.budgets` -> (column, comparison).
BUDGET_LIMITS = {
    "max_latency_ms_b1": ("latency_ms_b1", "<="),
    "max_params": ("params_total", "<="),
    "max_params_non_embedding": ("params_non_embedding", "<="),
    "max_disk_mb": ("disk_mb", "<="),
    "min_f1": ("f1", ">="),
    "min_f1_typo5": ("f1_typo5", ">="),
}
PACKAGES = (
    "medistill",
    "torch",
    "transformers",
    "tokenizers",
    "snakemake",
    "mlflow",
    "seqeval",
    "numpy",
    "pandas",
    "matplotlib",
)


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
    df = pd.json_normalize(records, sep=".")
    if "f1_std" not in df:  # evaluations written before seeds were recorded
        df["f1_std"] = np.nan
    return df


def add_relative_columns(df: pd.DataFrame) -> pd.DataFrame:
    """Add ``f1_retention`` and ``speedup`` against the teacher of the same teacher and task.

    Absolute F1 differs a lot between tasks; ratios to the teacher make students comparable.
    A multi-teacher student is compared with its `reference_teacher` (the mix's `init`, whose
    weights it starts from). Rows whose teacher was not evaluated get NaN, not a misleading number.
    """
    teachers = df[df["role"] == "teacher"]
    duplicated = teachers.duplicated(["teacher", "task"])
    if duplicated.any():
        pairs = teachers.loc[duplicated, ["teacher", "task"]].to_records(index=False).tolist()
        raise ValueError(f"several teacher rows for (teacher, task) {pairs}")
    reference = teachers.set_index(["teacher", "task"])
    reference_teacher = (
        df["reference_teacher"].fillna(df["teacher"])
        if "reference_teacher" in df
        else df["teacher"]
    )
    keys = pd.MultiIndex.from_arrays([reference_teacher, df["task"]])
    teacher_f1 = reference["f1"].reindex(keys).to_numpy(dtype=float)
    teacher_latency = reference["latency_ms_b1"].reindex(keys).to_numpy(dtype=float)

    out = df.copy()
    is_teacher = out["role"] == "teacher"
    out["f1_retention"] = out["f1"].astype(float) / teacher_f1
    out["speedup"] = teacher_latency / out["latency_ms_b1"].astype(float)
    out.loc[is_teacher, ["f1_retention", "speedup"]] = 1.0
    return out


def add_baseline_columns(df: pd.DataFrame) -> pd.DataFrame:
    """Add ``baseline_f1`` and ``f1_vs_baseline``: each distilled student against the same
    student trained on gold labels alone (corpus ``gold``, same teacher, size and task).

    NaN where there is no baseline row, and on teacher and baseline rows themselves.
    """
    out = df.copy()
    is_baseline = (out["corpus"] == BASELINE_CORPUS) & (out["role"] != "teacher")
    baselines = out[is_baseline].set_index(["teacher", "size", "task"])["f1"]
    keys = pd.MultiIndex.from_frame(out[["teacher", "size", "task"]])
    out["baseline_f1"] = baselines.reindex(keys).to_numpy(dtype=float)
    out.loc[is_baseline | (out["role"] == "teacher"), "baseline_f1"] = np.nan
    out["f1_vs_baseline"] = out["f1"].astype(float) - out["baseline_f1"]
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
        with atomic_path(path) as tmp:
            fig.savefig(tmp, dpi=150)
    finally:
        plt.close(fig)


def _save(fig, path: Path) -> None:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=150)


def perturbation_columns(df: pd.DataFrame) -> list[str]:
    """``f1`` (clean) then the ``f1_<perturbation>`` score columns present (``f1_typo5``, ...)."""
    from medistill.tasks import ROBUSTNESS_SETS

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
    """``teacher/corpus/size`` for a student folder, ``teacher (teacher)`` for a teacher's."""
    parts = Path(model_dir).parts
    if "students" in parts:
        i = len(parts) - 1 - parts[::-1].index("students")
        return "/".join(parts[i + 1 : i + 4])
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


def recommend(df: pd.DataFrame, budgets: Iterable[Mapping]) -> pd.DataFrame:
    """The best student within each budget, per task: highest F1, then fewest parameters.

    A budget is a name plus limits (keys of BUDGET_LIMITS); a student missing a limited column
    does not fit. A budget no student fits gets a row with an empty ``model``.
    """
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


def environment() -> dict[str, str]:
    """Python, OS, CPU, GPU and package versions of the machine building the report."""
    env = {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu": _cpu_model(),
        "cpu cores": str(os.cpu_count()),
    }
    try:
        import torch

        env["gpu"] = (
            ", ".join(torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count()))
            if torch.cuda.is_available()
            else "none (CUDA not available)"
        )
    except Exception as error:  # the report must not fail on a broken GPU driver
        env["gpu"] = f"unknown ({error})"
    for package in PACKAGES:
        try:
            env[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            env[package] = "not installed"
    return env


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _table(df: pd.DataFrame) -> str:
    table = df.to_html(
        index=False, border=0, classes="table", na_rep="", float_format="{:.4g}".format
    )
    return f'<div class="scroll">{table}</div>'


def _baseline_table(df: pd.DataFrame) -> str:
    rows = df[df["baseline_f1"].notna()]
    if rows.empty:
        return "<p>No baseline row (<code>sweep.baselines</code> is off).</p>"
    columns = ["teacher", "corpus", "size", "f1", "f1_std", "baseline_f1", "f1_vs_baseline"]
    beaten = int((rows["f1_vs_baseline"] > 0).sum())
    return (
        f"<p>Distillation beat the gold-only baseline for {beaten} of {len(rows)} students "
        "(same student, same steps, no teacher).</p>" + _table(rows.loc[:, columns])
    )


def _img(path: Path, alt: str) -> str:
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return f'<img src="data:image/png;base64,{data}" alt="{html.escape(alt)}">'


def _licence_tables(config: Mapping) -> str:
    sweep = config.get("sweep", {})
    teachers = pd.DataFrame(
        [
            {"teacher": n, "source": t.get("source", ""), "licence": t.get("licence", "")}
            for n, t in config.get("teachers", {}).items()
            if n in sweep.get("teachers", [n])
        ]
    )
    corpora = pd.DataFrame(
        [
            {"corpus": n, "licence": c.get("licence", "BSD-3-Clause AND Apache-2.0")}
            for n, c in config.get("corpora", {}).items()
            if n in sweep.get("corpora", [n])
        ]
    )
    return (
        "<h3>Teachers</h3>"
        + (_table(teachers) if not teachers.empty else "<p>none</p>")
        + "<h3>Corpora</h3>"
        + (_table(corpora) if not corpora.empty else "<p>none</p>")
        + "<p>A student's weights derive from its teacher's: the teacher's licence applies.</p>"
    )


HTML_STYLE = """
body{font-family:sans-serif;max-width:1300px;margin:2em auto;padding:0 1em;color:#222}
table.table{border-collapse:collapse;font-size:13px;margin:0.5em 0}
table.table th,table.table td{border:1px solid #ccc;padding:3px 7px;text-align:right}
table.table th{background:#f0f0f0}
figure{display:inline-block;margin:0.5em;vertical-align:top}
figure img{max-width:620px;width:100%;border:1px solid #ddd}
figcaption{font-size:13px;color:#555}
div.scroll{overflow-x:auto}
pre{background:#f7f7f7;padding:1em;font-size:12px;overflow-x:auto}
"""


def render_html(
    df: pd.DataFrame,
    plots: Mapping[str, Path],
    recommendations: pd.DataFrame,
    config: Mapping | None,
    env: Mapping[str, str],
) -> str:
    """One self-contained HTML page: every plot embedded, no external resource."""
    import yaml

    front_rows = []
    for column, (score, cost) in FRONTS.items():
        members = df[df[column]].sort_values(cost)
        for _, row in members.iterrows():
            front_rows.append(
                {
                    "front": f"{score} up, {cost} down",
                    "task": row["task"],
                    "model": f"{row['teacher']}/{row['corpus']}/{row['size']}",
                    score: row[score],
                    cost: row[cost],
                }
            )
    columns = [*LEAD_COLUMNS, *[c for c in FRONTS if c in df.columns]]
    columns += [c for c in ("disk_mb", "latency_ms_b1_p95") if c in df.columns]
    figures = "\n".join(
        f"<figure>{_img(path, title)}<figcaption>{html.escape(title)}</figcaption></figure>"
        for title, path in plots.items()
    )
    config_text = yaml.safe_dump(dict(config or {}), sort_keys=False, allow_unicode=True)
    env_table = _table(pd.DataFrame({"item": list(env), "value": list(env.values())}))
    now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    budgets = (
        _table(recommendations)
        if not recommendations.empty
        else "<p>No budget in the config (<code>report.budgets</code>).</p>"
    )
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>medistill trade-off report</title><style>{HTML_STYLE}</style></head>
<body>
<h1>medistill: size / performance trade-off</h1>
<p>{len(df)} models evaluated ({int((df["role"] == "teacher").sum())} of them teachers), {now}.
F1 is seqeval entity-level micro F1 (strict IOB2), the mean over the training seeds
(<code>f1_std</code>: their standard deviation); <code>f1_typo5</code> is F1 with a typo in 5%
of the test words; latency is the median CPU time per sentence at batch size 1. Corpus
<code>gold</code> rows are the baselines: the same student trained on gold labels alone.</p>
<h2 id="budgets">Recommended student per budget</h2>
{budgets}
<h2 id="baselines">Distillation against its baseline</h2>
{_baseline_table(df)}
<h2 id="plots">Plots</h2>
{figures}
<h2 id="fronts">Pareto fronts</h2>
<p>Models no other model of the same task beats on both axes.</p>
{_table(pd.DataFrame(front_rows))}
<h2 id="table">Trade-off table</h2>
{_table(df.loc[:, columns])}
<h2 id="licences">Licences</h2>
{_licence_tables(config or {})}
<h2 id="config">Configuration</h2>
<pre>{html.escape(config_text)}</pre>
<h2 id="environment">Environment (of the report step)</h2>
{env_table}
</body></html>
"""


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
        df[column] = _pareto_front_per_task(df, maximize=score, minimize=cost)
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
    budgets = (config or {}).get("report", {}).get("budgets", [])
    recommendations = recommend(df, budgets)
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
