"""The report page: one self-contained HTML file with the recommendations, the embedded plots,
the trade-off table, licences, the config and the environment that built it."""

from __future__ import annotations

import base64
import html
import os
import platform
from collections.abc import Mapping
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

import pandas as pd

from medistill.data.sources import corpus_licence
from medistill.data.tasks import BASELINE_CORPUS
from medistill.report.tradeoff import FRONTS, LEAD_COLUMNS, SIGNIFICANCE_COLUMNS, SIGNIFICANCE_LEVEL

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


def html_table(df: pd.DataFrame) -> str:
    table = df.to_html(
        index=False, border=0, classes="table", na_rep="", float_format="{:.4g}".format
    )
    return f'<div class="scroll">{table}</div>'


def _baseline_table(df: pd.DataFrame) -> str:
    rows = df[df["baseline_f1"].notna()]
    if rows.empty:
        return "<p>No baseline row (<code>sweep.baselines</code> is off).</p>"
    columns = ["teacher", "corpus", "size", "f1", "f1_std", "baseline_f1", "f1_vs_baseline"]
    columns += list(SIGNIFICANCE_COLUMNS)
    helped = int((rows["p_holm"] < SIGNIFICANCE_LEVEL).sum())
    higher = int((rows["f1_vs_baseline"] > 0).sum())
    units = ", ".join(sorted(set(rows["bootstrap_unit"].dropna()))) or "sentences"
    return (
        f"<p>Distillation helped (F1 above the gold-only baseline: paired bootstrap over test "
        f"{units} and seed runs, one-sided, Holm-adjusted over the {len(rows)} comparisons, "
        f"<code>p_holm</code> &lt; {SIGNIFICANCE_LEVEL}) for {helped} of {len(rows)} students; "
        f"{higher} scored higher than their baseline at all (same student, same steps, no "
        "teacher). <code>f1_vs_baseline_lower</code> is the one-sided 95% lower bound that goes "
        "with <code>p_vs_baseline</code>; <code>p_vs_baseline_sentences</code> resamples "
        "sentences alone, runs fixed, for comparison.</p>" + html_table(rows.loc[:, columns])
    )


GENERATIVE_COLUMNS = (
    "teacher",
    "size",
    "licence",
    "engine",
    "f1",
    "precision",
    "recall",
    "f1_aligned_only",
    "f1_typo5",
    "f1_unseen",
    "f1_retention",
    "speedup",
    "latency_ms_b1",
    "latency_ms_b1_transformers",
    "tokens_per_s_b1",
    "params_total",
    "disk_mb",
    "parse.lines",
    "parse.malformed",
    "parse.unknown_type",
    "parse.not_found",
    "parse.overlapping",
    "parse.unparsed_share",
)


def _generative_table(df: pd.DataFrame) -> str:
    """The generative taggers beside the encoder teacher: what their outputs kept and lost."""
    rows = df[df["role"] == "generative"]
    if rows.empty:
        return "<p>No generative tagger (<code>generative.sweep</code> is empty).</p>"
    columns = [c for c in GENERATIVE_COLUMNS if c in rows.columns]
    return (
        "<p>Each tagger writes <code>TYPE: mention</code> lines, aligned back to the sentence's "
        "words and scored like the encoders; retention and speedup are against the sweep's "
        "first encoder teacher. <code>parse.*</code> counts output lines on the clean test set "
        "that could not be used: malformed, of an unknown type, not found in the sentence, "
        "or overlapping an earlier mention. The first three name no mention of the sentence "
        "and count as false positives in <code>precision</code> and <code>f1</code>, as a "
        "wrong mention of an encoder would (<code>f1_aligned_only</code>: without them). "
        "<code>engine</code> wrote the outputs and timed <code>latency_ms_b1</code> "
        "(<code>tokens_per_s_b1</code>: generated tokens per second of it); "
        "<code>latency_ms_b1_transformers</code>: the same prompts run by transformers.</p>"
        + html_table(rows.loc[:, columns].rename(columns={"teacher": "tagger", "size": "kind"}))
    )


SILVER_COLUMNS = (
    "teacher",
    "reference_teacher",
    "corpus",
    "size",
    "f1",
    "f1_std",
    "f1_retention",
    "speedup",
    "baseline_f1",
    "f1_vs_baseline",
    "p_vs_baseline",
    "p_holm",
)


def _silver_table(df: pd.DataFrame, config: Mapping) -> str:
    """Students of generative teachers (silver tags) beside the same students of the encoder
    teacher they start from: which teacher served the student better."""
    teachers = config.get("teachers", {})
    silver = {n: t["init"] for n, t in teachers.items() if "labels_from" in t}
    students = df[(df["role"] == "student") & (df["corpus"] != BASELINE_CORPUS)]
    learnt = students[students["teacher"].isin(list(silver))]
    if learnt.empty:
        return ""
    encoder = students[
        students["teacher"].isin(list(silver.values()))
        & students["size"].isin(learnt["size"])
        & students["corpus"].isin(learnt["corpus"])
    ]
    rows = pd.concat([learnt, encoder]).sort_values(["size", "corpus", "teacher"])
    columns = [c for c in SILVER_COLUMNS if c in rows.columns]
    return (
        "<h3>Students of generative teachers</h3><p>A generative teacher's students learn its "
        "tagger's silver tags on the transfer corpus (and the train split); their retention "
        "and speedup are against that tagger (<code>reference_teacher</code>), those of the "
        "encoder teacher's students (same sizes and corpora) against the encoder teacher.</p>"
        + html_table(rows.loc[:, columns])
    )


def html_image(path: Path, alt: str) -> str:
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return f'<img src="data:image/png;base64,{data}" alt="{html.escape(alt)}">'


def licence_tables(config: Mapping) -> str:
    """The licences of the teachers, corpora and generative taggers of a (defaults-filled)
    config's sweep; a seq2seq config passes its family's sweep and no `generative` block."""
    if not config:
        return "<p>No configuration given: licences unknown.</p>"
    sweep, teachers_spec = config["sweep"], config["teachers"]
    teachers = pd.DataFrame(
        [
            {"teacher": n, "source": t.get("source", ""), "licence": t["licence"]}
            for n, t in teachers_spec.items()
            if n in sweep["teachers"]
        ]
    )
    corpora = pd.DataFrame(
        [
            {"corpus": n, "licence": corpus_licence(config["corpora"][n])}
            for n in sweep["corpora"]
            if n in config["corpora"]
        ]
    )
    generative = config.get("generative", {"taggers": {}})
    teaching = {t.get("labels_from") for t in teachers_spec.values()}
    taggers = pd.DataFrame(
        [
            {
                "tagger": n,
                "source": t.get("source", f"BERT2BERT from teacher {t.get('from')}"),
                "licence": t["licence"] if "licence" in t else teachers_spec[t["from"]]["licence"],
            }
            for n, t in generative["taggers"].items()
            if n in generative["sweep"] or n in teaching
        ]
    )
    return (
        "<h3>Teachers</h3>"
        + (html_table(teachers) if not teachers.empty else "<p>none</p>")
        + ("<h3>Generative taggers</h3>" + html_table(taggers) if not taggers.empty else "")
        + "<h3>Corpora</h3>"
        + (html_table(corpora) if not corpora.empty else "<p>none</p>")
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
        f"<figure>{html_image(path, title)}<figcaption>{html.escape(title)}</figcaption></figure>"
        for title, path in plots.items()
    )
    config_text = yaml.safe_dump(dict(config or {}), sort_keys=False, allow_unicode=True)
    env_table = html_table(pd.DataFrame({"item": list(env), "value": list(env.values())}))
    now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    budgets = (
        # a budget no student meets says so instead of showing an empty cell
        html_table(recommendations.replace({"model": {"": "no student fits"}}))
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
of the test words; latency is the median CPU time per sentence at batch size 1;
<code>speedup</code> is against the float PyTorch teacher, <code>speedup_same_runtime</code>
against the teacher in the model's own runtime (rows <code>teacher-int8</code>,
<code>teacher-onnx</code>...: the teacher compressed like the student, so the runtime's own
gain is not credited to the student). Corpus <code>gold</code> rows are the baselines: the
same student trained on gold labels alone.</p>
<h2 id="budgets">Recommended student per budget</h2>
{budgets}
<h2 id="baselines">Distillation against its baseline</h2>
{_baseline_table(df)}
<h2 id="generative">Generative taggers</h2>
{_generative_table(df)}
{_silver_table(df, config or {})}
<h2 id="plots">Plots</h2>
{figures}
<h2 id="fronts">Pareto fronts</h2>
<p>Models no other model of the same task beats on both axes.</p>
{html_table(pd.DataFrame(front_rows))}
<h2 id="table">Trade-off table</h2>
{html_table(df.loc[:, columns])}
<h2 id="licences">Licences</h2>
{licence_tables(config)}
<h2 id="config">Configuration</h2>
<pre>{html.escape(config_text)}</pre>
<h2 id="environment">Environment (of the report step)</h2>
{env_table}
</body></html>
"""
