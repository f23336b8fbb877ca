"""Tests for the seq2seq report (medistill.seq2seq.report): the trade-off table's ratios and
fronts, the plots, the page's route comparison, best student and lead comparison."""

import json
import re

import pandas as pd
import pytest

from medistill.report.tradeoff import pareto_front
from medistill.seq2seq.report import build_seq2seq_report
from medistill.seq2seq.tradeoff import FRONTS, LEAD_COLUMNS

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
TASK = "summary-synth"
TEACHER = "bert2bert"


def evaluation(route, size, rouge_l, rouge_l_std=0.01, latency=None, params=0, **extra):
    """One seq2seq evaluation record as `medistill` writes it; the role follows the route."""
    role = {"teacher": "teacher", "lead": "baseline"}.get(route, "student")
    corpus = {"teacher": "teacher", "lead": "lead", "shrink": "gold"}.get(route, "wiki")
    record = {
        "family": "seq2seq",
        "task": TASK,
        "kind": "summary",
        "teacher": "lead" if role == "baseline" else TEACHER,
        "corpus": corpus,
        "route": route,
        "size": size,
        "role": role,
        "seeds": [] if role == "baseline" else [0, 1],
        "rouge1": rouge_l + 0.05,
        "rouge2": rouge_l - 0.1,
        "rougeL": rouge_l,
        "rougeL_std": 0.0 if role == "baseline" else rouge_l_std,
        "entity_recall": rouge_l + 0.3,
        "entity_precision": None,
        "hallucinated_per_output": 0.2,
        "answerable": None,
        "robustness": {
            "typo5": {"rougeL": rouge_l - 0.02, "entity_recall": rouge_l + 0.25},
            "abbrev": {"rougeL": rouge_l - 0.03, "entity_recall": rouge_l + 0.2},
            "unseen": {"rougeL": rouge_l - 0.05, "entity_recall": rouge_l + 0.1},
        },
        "latency_ms_output": latency,
        "tokens_per_s": None if latency is None else 1000.0 / latency * 30,
        "params_total": params,
        "disk_mb": params * 4 / 1e6,
        "energy_kwh_train": None,
        "co2_kg_train": None,
    }
    record.update(extra)
    return record


# teacher 0.40 at 100 ms; lead 0.30; E6D2 2.5x faster, E3D1 5x faster.
RECORDS = [
    evaluation(
        "teacher",
        "teacher",
        0.40,
        0.0,
        latency=100.0,
        params=200_000_000,
        free_decoding={
            "rougeL": 0.35,
            "entity_recall": 0.5,
            "entity_precision": 0.6,
            "hallucinated_per_output": 1.5,
        },
    ),
    evaluation("lead", "lead", 0.30),
    evaluation("shrink", "E6D2", 0.33, latency=40.0, params=80_000_000),
    evaluation("sequence", "E6D2", 0.36, latency=40.0, params=80_000_000),
    evaluation(
        "word",
        "E6D2",
        0.38,
        0.005,
        latency=40.0,
        params=80_000_000,
        free_decoding={
            "rougeL": 0.31,
            "entity_recall": 0.5,
            "entity_precision": 0.6,
            "hallucinated_per_output": 1.5,
        },
    ),
    evaluation("shrink", "E3D1", 0.30, 0.02, latency=20.0, params=40_000_000),
    evaluation("sequence", "E3D1", 0.34, latency=20.0, params=40_000_000),
    evaluation("word", "E3D1", 0.335, latency=20.0, params=40_000_000),
]
CONFIG = {
    "teachers": {TEACHER: {"source": "local:models/bert2bert-fr", "licence": "MIT"}},
    "corpora": {"wiki": {"licence": "CC-BY-SA-4.0"}},
    "seq2seq": {
        "llm_teachers": {},
        "sweep": {"tasks": [TASK], "teachers": [TEACHER], "corpora": ["wiki"]},
        "generation": {"num_beams": 2, "max_new_tokens": 96, "restrict_vocabulary": 0.5},
    },
}


def write_evaluations(folder, records):
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, record in enumerate(records):
        path = folder / f"{i}.json"
        path.write_text(json.dumps(record))
        paths.append(path)
    return paths


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("seq2seq_report")
    out_dir = tmp_path / "report"
    df = build_seq2seq_report(write_evaluations(tmp_path / "eval", RECORDS), out_dir, CONFIG)
    return df, out_dir


def test_tradeoff_csv_columns_and_ratios(report):
    _, out_dir = report
    csv = pd.read_csv(out_dir / "tradeoff.csv")
    assert list(csv.columns[: len(LEAD_COLUMNS)]) == list(LEAD_COLUMNS)
    assert len(csv) == len(RECORDS)
    for column in ("rougeL_typo5", "entity_recall_abbrev", "rougeL_unseen"):
        assert column in csv.columns, column
    assert not [c for c in csv.columns if c.startswith("robustness")]
    assert csv["params_total"].dtype == "int64"  # a count, not a float
    # Teacher first, then the lead, then the three routes of the smaller size side by side.
    assert csv["role"].tolist()[:2] == ["teacher", "baseline"]
    assert csv["size"].tolist()[2:5] == ["E3D1"] * 3
    assert csv["route"].tolist()[2:5] == ["shrink", "sequence", "word"]

    rows = csv.set_index(["route", "size"])
    word = rows.loc[("word", "E6D2")]
    assert word["rougeL_retention"] == pytest.approx(0.38 / 0.40)
    assert word["speedup"] == pytest.approx(2.5)
    assert word["rougeL_vs_lead"] == pytest.approx(0.08)
    assert word["rougeL_typo5"] == pytest.approx(0.36)
    assert rows.loc[("sequence", "E3D1"), "speedup"] == pytest.approx(5.0)
    teacher = rows.loc[("teacher", "teacher")]
    assert teacher["rougeL_retention"] == 1.0 and teacher["speedup"] == 1.0
    # The lead is no model of the teacher: no retention, no speedup.
    lead = rows.loc[("lead", "lead")]
    assert pd.isna(lead["rougeL_retention"]) and pd.isna(lead["speedup"])
    assert lead["rougeL_vs_lead"] == pytest.approx(0.0)


def test_fronts_exclude_the_lead(report):
    df, out_dir = report
    csv = pd.read_csv(out_dir / "tradeoff.csv")
    for column in FRONTS:
        assert csv[column].dtype == bool, column
    rows = csv.set_index(["route", "size"])
    on_latency = set(rows.index[rows["on_front_latency"]])
    assert on_latency == {("teacher", "teacher"), ("word", "E6D2"), ("sequence", "E3D1")}
    on_params = set(rows.index[rows["on_front_params"]])
    assert on_params == on_latency
    # With its 0 parameters the lead would be on the front, and push the E3D1 shrink student
    # (same ROUGE-L, more parameters) off it for a second reason; it is left out.
    assert pareto_front(df, "rougeL", "params_total")[df["route"] == "lead"].all()
    assert not rows.loc[("lead", "lead"), "on_front_params"]
    assert not rows.loc[("lead", "lead"), "on_front_latency"]


def test_plots_written_as_png_and_svg(report):
    _, out_dir = report
    for stem in ("pareto_rougeL_latency", "pareto_rougeL_params"):
        assert (out_dir / f"{stem}.png").read_bytes()[:8] == PNG_MAGIC, stem
        svg = (out_dir / f"{stem}.svg").read_text()
        assert svg.lstrip().startswith("<?xml"), stem
        assert "ROUGE-L" in svg  # axis label and title are text in the SVG
    assert not list(out_dir.glob(".*"))  # written atomically, no temp file left behind


def test_report_html_names_best_route_best_student_and_lead(report):
    _, out_dir = report
    page = (out_dir / "report.html").read_text()
    images = re.findall(r'<img src="([^"]+)"', page)
    assert len(images) == 2 and all(src.startswith("data:image/png;base64,") for src in images)
    assert not re.search(r'(src|href)="(?!data:)', page)  # nothing fetched from elsewhere
    # Routes: word wins at E6D2 (by 0.02, beyond the 0.01 std), sequence at E3D1 (by 0.01,
    # within the std).
    # Tied at one size each: the order of ROUTES breaks the tie.
    assert (
        "best route <code>sequence</code> at 1 of 2 size(s) (0 beyond the seeds' std), then "
        "<code>word</code> at 1 of 2 size(s) (1 beyond the seeds' std)" in page
    )
    assert "0.380 ± 0.005" in page
    # Best student at least 2x faster: word/E6D2 (E3D1 is faster but scores lower).
    assert (
        f"<code>{TEACHER}/word/wiki/E6D2</code>, ROUGE-L 0.380 (95% of its teacher's), "
        "2.5x faster than its teacher" in page
    )
    assert (
        f"Teacher <code>{TEACHER}</code> on <b>{TASK}</b> beats the lead baseline by +0.100 "
        "ROUGE-L (entity recall +0.100)" in page
    )
    assert (
        "Every model decodes with 2 beams, at most 96 new tokens, restricted to its report's own "
        "tokens and those of at least 50% of the train targets" in page
    )
    for text in (
        "Routes compared",
        "Teacher against the lead baseline",
        "lead entity_recall",
        "CC-BY-SA-4.0",  # transfer corpus licence
        "local:models/bert2bert-fr",  # the config shown
        "cpu cores",  # environment
    ):
        assert text in page, text


def test_restricted_and_free_decoding_side_by_side(report):
    df, out_dir = report
    csv = pd.read_csv(out_dir / "tradeoff.csv").set_index(["route", "size"])
    assert csv.loc[("word", "E6D2"), "rougeL_free"] == pytest.approx(0.31)
    assert csv.loc[("word", "E6D2"), "hallucinated_per_output_free"] == pytest.approx(1.5)
    assert pd.isna(csv.loc[("shrink", "E6D2"), "rougeL_free"])  # decoded one way only
    page = (out_dir / "report.html").read_text()
    # restricted - free: teacher 0.40 - 0.35, word E6D2 0.38 - 0.31
    assert "changes ROUGE-L by +0.050 to +0.070 (median +0.060) over the 2 models" in page
    assert "ROUGE-L free" in page and "hallucinated restricted" in page


def test_teacher_below_lead_and_no_fast_student_are_said(tmp_path):
    records = [
        evaluation("teacher", "teacher", 0.28, latency=30.0, params=200_000_000),
        evaluation("lead", "lead", 0.30),
        evaluation("word", "E6D2", 0.27, latency=20.0, params=80_000_000),
    ]
    out_dir = tmp_path / "report"
    df = build_seq2seq_report(write_evaluations(tmp_path / "eval", records), out_dir)
    page = (out_dir / "report.html").read_text()
    assert "does <b>not</b> beat the lead baseline (-0.020 ROUGE-L)" in page
    assert "no student is at least 2x faster than its teacher (the fastest is 1.5x)" in page
    assert "No configuration given." in page and "Every model decodes" not in page
    assert "No model decodes restricted" in page
    assert df["rougeL_vs_lead"].tolist() == pytest.approx([-0.02, 0.0, -0.03])


def test_no_evaluation_files_is_an_error(tmp_path):
    with pytest.raises(ValueError, match="no seq2seq evaluation"):
        build_seq2seq_report([], tmp_path / "report")
    assert not (tmp_path / "report").exists()


def test_an_ner_evaluation_is_refused_with_its_name(tmp_path):
    path = write_evaluations(tmp_path, [evaluation("word", "E6D2", 0.3, family="ner")])[0]
    with pytest.raises(ValueError, match=r"0\.json: family is 'ner'"):
        build_seq2seq_report([path], tmp_path / "report")
