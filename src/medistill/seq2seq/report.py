"""The seq2seq family's report: its evaluation files in, ``tradeoff.csv``, two Pareto plots and
``report.html`` out, to answer "which small summariser is worth deploying, and which way of
making it (route) is best".

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

The NER report (`medistill.report.build`) works on F1 and other keys; this module reuses its Pareto
front, its page style, tables and environment block, not its table or plot code.
"""

from __future__ import annotations

import html
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # headless: reports are built by the workflow, never shown on screen

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from medistill.core.io import atomic_path, atomic_write  # noqa: E402
from medistill.report.html import (  # noqa: E402
    HTML_STYLE,
    environment,
    html_image,
    html_table,
    licence_tables,
)
from medistill.report.plots import STUDENT_MARKERS  # noqa: E402
from medistill.report.tradeoff import pareto_front_per_task, read_evaluation  # noqa: E402
from medistill.seq2seq.tasks import ROUTES  # noqa: E402

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
_ROUTE_ORDER = {route: i for i, route in enumerate(ROUTES)}
# One marker per route, the NER plots' student markers; a route added later gets a fourth.
_ROUTE_MARKERS = dict(zip(ROUTES, STUDENT_MARKERS, strict=False))
OTHER_ROUTE_MARKER = STUDENT_MARKERS[len(ROUTES)]


# --- the table ------------------------------------------------------------------------------


def _read_evaluation(path: Path) -> dict:
    """`report.tradeoff.read_evaluation` with the seq2seq keys, and of the seq2seq family."""
    record = read_evaluation(path, REQUIRED_KEYS)
    if record["family"] != FAMILY:
        # An NER evaluation given by mistake would otherwise fail later on a missing column.
        raise ValueError(f"{path}: family is {record['family']!r}, expected {FAMILY!r}")
    return record


def load_seq2seq_evaluations(paths: Iterable[str | Path]) -> pd.DataFrame:
    """One row per evaluation file; ``robustness.<set>.<metric>`` becomes ``<metric>_<set>``
    (``rougeL_typo5``), named like the NER table's ``f1_typo5``."""
    records = [_read_evaluation(Path(p)) for p in paths]
    if not records:
        return pd.DataFrame(columns=list(REQUIRED_KEYS))
    df = pd.json_normalize(records, sep=".")
    renames = {}
    for column in df.columns:
        parts = column.split(".")
        if len(parts) == 3 and parts[0] == "robustness":
            renames[column] = f"{parts[2]}_{parts[1]}"
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
            _route=df["route"].map(_ROUTE_ORDER).fillna(len(_ROUTE_ORDER)),
        )
        .sort_values(
            ["task", "_role", "teacher", "params_total", "size", "_route", "corpus"],
            kind="stable",
        )
        .loc[:, [*LEAD_COLUMNS, *rest]]
    )
    with atomic_path(path) as tmp:
        ordered.to_csv(tmp, index=False)


# --- the summaries the page leads with ------------------------------------------------------


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


# --- the plots ------------------------------------------------------------------------------


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


# --- the page -------------------------------------------------------------------------------


def _best_student_lines(best: pd.DataFrame, min_speedup: float) -> str:
    items = []
    for _, row in best.iterrows():
        task = html.escape(str(row["task"]))
        if row["model"]:
            items.append(
                f"<li><b>{task}</b>: <code>{html.escape(row['model'])}</code>, ROUGE-L "
                f"{row['rougeL']:.3f} ({row['rougeL_retention']:.0%} of its teacher's), "
                f"{row['speedup']:.1f}x faster than its teacher, {row['params_total']:,.0f} "
                "parameters.</li>"
            )
            continue
        fastest = f" (the fastest is {row['fastest']:.1f}x)" if not pd.isna(row["fastest"]) else ""
        items.append(
            f"<li><b>{task}</b>: no student is at least {min_speedup:g}x faster than its "
            f"teacher{fastest}.</li>"
        )
    return "<ul>" + "".join(items) + "</ul>" if items else "<p>No task evaluated.</p>"


def _route_summary(routes: pd.DataFrame) -> str:
    """Per task, how many sizes each route wins, the winner first."""
    sentences = []
    for task, group in routes.groupby("task", sort=False):
        wins = group["best route"].value_counts()
        # Most sizes won first; a tie in the order of ROUTES, so the page is stable.
        ranked = sorted(wins.items(), key=lambda item: (-item[1], _ROUTE_ORDER.get(item[0], 99)))
        parts = []
        for route, count in ranked:
            clear = int(
                ((group["best route"] == route) & (group["beyond seed std"] == "yes")).sum()
            )
            parts.append(
                f"<code>{html.escape(str(route))}</code> at {count} of {len(group)} "
                f"size(s) ({clear} beyond the seeds' std)"
            )
        sentences.append(
            f"<b>{html.escape(str(task))}</b>: best route " + ", then ".join(parts) + "."
        )
    return "<p>" + "<br>".join(sentences) + "</p>"


def _lead_comparison(table: pd.DataFrame) -> str:
    if table.empty:
        return "<p>No teacher evaluated.</p>"
    sentences = []
    for _, row in table.iterrows():
        who = f"Teacher <code>{html.escape(str(row['teacher']))}</code> on " + (
            f"<b>{html.escape(str(row['task']))}</b>"
        )
        if pd.isna(row["lead rougeL"]):
            sentences.append(f"{who}: no lead baseline evaluated.")
        elif row["rougeL_vs_lead"] > 0:
            sentences.append(
                f"{who} beats the lead baseline by {row['rougeL_vs_lead']:+.3f} ROUGE-L "
                f"(entity recall {row['entity_recall_vs_lead']:+.3f})."
            )
        else:
            sentences.append(
                f"{who} does <b>not</b> beat the lead baseline ({row['rougeL_vs_lead']:+.3f} "
                "ROUGE-L): copying the report's first sentences does as well, so its students "
                "are distilled from a model not worth having."
            )
    return "<p>" + "<br>".join(sentences) + "</p>" + html_table(table)


def _decoding_sentence(generation: Mapping | None) -> str:
    """How every output in the table was decoded: restricted decoding changes what the scores
    mean, so the page says it next to them."""
    if not generation:
        return ""
    beams = generation["num_beams"]
    sentence = (
        f"Every model decodes with {beams} beam{'s' if beams != 1 else ''}, at most "
        f"{generation.get('max_new_tokens')} new tokens, "
    )
    share = generation.get("restrict_vocabulary")
    if share is None:
        return sentence + "over its whole vocabulary (<code>restrict_vocabulary</code>: null)."
    return sentence + (
        "restricted to its report's own tokens and those of at least "
        f"{share:.0%} of the train targets (<code>restrict_vocabulary: {share:g}</code>)."
    )


def render_seq2seq_html(
    df: pd.DataFrame,
    plots: Mapping[str, Path],
    config: Mapping | None,
    env: Mapping[str, str],
    min_speedup: float = MIN_SPEEDUP,
) -> str:
    """One self-contained HTML page: every plot embedded, no external resource."""
    import yaml

    figures = "\n".join(
        f"<figure>{html_image(path, title)}<figcaption>{html.escape(title)}</figcaption></figure>"
        for title, path in plots.items()
    )
    # The flattened robustness scores (rougeL_typo5, ...) follow the key columns.
    robustness = sorted(
        c
        for c in df.columns
        if c.startswith(("rougeL_", "entity_recall_")) and c not in LEAD_COLUMNS
    )
    columns = [*LEAD_COLUMNS, *robustness]
    routes = compare_routes(df)
    routes_table = (
        _route_summary(routes) + html_table(routes)
        if not routes.empty
        else "<p>No student with a ROUGE-L score.</p>"
    )
    env_table = html_table(pd.DataFrame({"item": list(env), "value": list(env.values())}))
    if config:
        config_text = yaml.safe_dump(dict(config), sort_keys=False, allow_unicode=True)
        config_block = f"<pre>{html.escape(config_text)}</pre>"
        family = config["seq2seq"]
        # Seq2seq teachers (fine-tuned or prompted LLMs) and transfer corpora are those the
        # family's sweep names.
        licences = licence_tables(
            {
                "teachers": config["teachers"] | family["llm_teachers"],
                "corpora": config["corpora"],
                "sweep": family["sweep"],
            }
        )
    else:
        config_block = "<p>No configuration given.</p>"
        licences = "<p>No configuration given: licences unknown.</p>"
    decoding = _decoding_sentence((config or {}).get("seq2seq", {}).get("generation"))
    now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    n_teachers = int((df["role"] == TEACHER_ROLE).sum())
    n_students = int((df["role"] == STUDENT_ROLE).sum())
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>medistill seq2seq trade-off report</title><style>{HTML_STYLE}</style></head>
<body>
<h1>medistill seq2seq: size / quality trade-off</h1>
<p>{len(df)} evaluations ({n_teachers} teachers, {n_students} students, the rest lead
baselines), {now}. ROUGE-L is the F-measure on lower-cased French words, the mean over the
training seeds (<code>rougeL_std</code>: their standard deviation); entity recall is the share
of the reference's medical entities found in the output; latency is the median CPU time per
generated output at batch size 1 on one thread. <code>rougeL_retention</code> and
<code>speedup</code> are against the model's own teacher; <code>rougeL_vs_lead</code> against
the lead baseline (the report's first sentences, no model). Routes: <code>shrink</code> (gold
pairs only), <code>sequence</code> (plus the teacher's outputs on a transfer corpus),
<code>word</code> (plus the teacher's next-token distributions). {decoding}</p>
<h2 id="best">Best student per task (at least {min_speedup:g}x faster than its teacher)</h2>
{_best_student_lines(best_students(df, min_speedup), min_speedup)}
<h2 id="routes">Routes compared</h2>
<p>Same student shape, same training steps; only the route differs. A margin within the seeds'
standard deviation (<code>beyond seed std</code>: no) is no evidence for one route.</p>
{routes_table}
<h2 id="lead">Teacher against the lead baseline</h2>
{_lead_comparison(teacher_vs_lead(df))}
<h2 id="plots">Plots</h2>
{figures}
<h2 id="table">Trade-off table</h2>
{html_table(df.loc[:, columns])}
<h2 id="licences">Licences</h2>
{licences}
<h2 id="config">Configuration</h2>
{config_block}
<h2 id="environment">Environment (of the report step)</h2>
{env_table}
</body></html>
"""


def build_seq2seq_report(
    eval_paths: Iterable[str | Path],
    out_dir: str | Path,
    config: Mapping | None = None,
) -> pd.DataFrame:
    """Build ``tradeoff.csv``, the Pareto plots (PNG and SVG) and ``report.html`` in
    ``out_dir`` from the seq2seq evaluation files; return the trade-off table."""
    df = load_seq2seq_evaluations(eval_paths)
    if df.empty:
        raise ValueError("no seq2seq evaluation files to report on")
    df = add_fronts(add_seq2seq_relative_columns(df))
    out_dir = Path(out_dir)
    write_seq2seq_tradeoff(df, out_dir / "tradeoff.csv")
    plots: dict[str, Path] = {}
    for stem, (cost, front_column, title, xlabel) in FRONT_PLOTS.items():
        for suffix in ("png", "svg"):
            plot_seq2seq_pareto(df, cost, front_column, out_dir / f"{stem}.{suffix}", title, xlabel)
        plots[title] = out_dir / f"{stem}.png"  # the page embeds the PNG
    page = render_seq2seq_html(df, plots, config, environment())
    with atomic_write(out_dir / "report.html") as handle:
        handle.write(page)
    return df


def log_seq2seq_report(
    config: Mapping,
    table: pd.DataFrame,
    artifacts: Iterable[str | Path],
    log_run: Callable[..., object],
) -> None:
    """Log the seq2seq report as an MLflow run of the sweep: its headline figures and files."""
    students = table[table["role"] == STUDENT_ROLE]
    sweep = config["seq2seq"]["sweep"]
    log_run(
        "seq2seq/report",
        params={"sweep": sweep},
        metrics={
            "n_models": len(table),
            "best_student_rougeL": students["rougeL"].max() if len(students) else float("nan"),
            "best_student_rougeL_retention": (
                students["rougeL_retention"].max() if len(students) else float("nan")
            ),
        },
        tags={"stage": "report", "family": FAMILY}
        | {key: ",".join(sweep[key]) for key in ("tasks", "teachers", "corpora", "sizes")},
        artifacts=[Path(p) for p in artifacts if Path(p).is_file()],
    )
