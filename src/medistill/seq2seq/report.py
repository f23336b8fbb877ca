"""The seq2seq family's report page: its trade-off table (`seq2seq.tradeoff`) and Pareto plots
(`seq2seq.plots`) written, and the page that answers "which small summariser is worth
deploying, and which way of making it (route) is best": the best student within the speed
budget, the routes compared at each size, the teacher against the lead baseline, how every
output was decoded, licences, config and environment. It reuses the NER report's page style,
tables and environment block, not its table or plot code."""

from __future__ import annotations

import html
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd

from medistill.core.io import atomic_write
from medistill.report.html import (
    HTML_STYLE,
    environment,
    html_image,
    html_table,
    licence_tables,
)
from medistill.seq2seq.plots import FRONT_PLOTS, plot_seq2seq_pareto
from medistill.seq2seq.tradeoff import (
    FAMILY,
    LEAD_COLUMNS,
    MIN_SPEEDUP,
    ROUTE_ORDER,
    STUDENT_ROLE,
    TEACHER_ROLE,
    add_fronts,
    add_seq2seq_relative_columns,
    best_students,
    compare_routes,
    load_seq2seq_evaluations,
    model_name,
    teacher_vs_lead,
    write_seq2seq_tradeoff,
)


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
        ranked = sorted(wins.items(), key=lambda item: (-item[1], ROUTE_ORDER.get(item[0], 99)))
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


def _restriction_table(df: pd.DataFrame) -> str:
    """Each model scored restricted (as in the table) and free (the same run, decoding over its
    whole vocabulary): what the restriction buys, so it is a comparison, not a hidden crutch."""
    if "rougeL_free" not in df or df["rougeL_free"].isna().all():
        return "<p>No model decodes restricted, so there is nothing to compare.</p>"
    rows = df[df["rougeL_free"].notna()]
    table = pd.DataFrame(
        {
            "model": [model_name(row) for _, row in rows.iterrows()],
            **{
                f"{label} {way}": rows[f"{key}{suffix}"].to_numpy()
                for key, label in (
                    ("rougeL", "ROUGE-L"),
                    ("entity_recall", "entity recall"),
                    ("entity_precision", "entity precision"),
                    ("hallucinated_per_output", "hallucinated"),
                )
                for way, suffix in (("restricted", ""), ("free", "_free"))
            },
        }
    )
    gain = rows["rougeL"] - rows["rougeL_free"]
    return (
        f"<p>Restricting decoding changes ROUGE-L by {gain.min():+.3f} to {gain.max():+.3f} "
        f"(median {gain.median():+.3f}) over the {len(rows)} models decoded both ways.</p>"
        + html_table(table)
    )


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
<h2 id="restriction">Restricted against free decoding</h2>
{_restriction_table(df)}
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
