"""Tests for the report (medistill.report.tradeoff, plots, report): Pareto fronts, relative columns,
loading and the full report."""

import json
import math

import numpy as np
import pandas as pd
import pytest

from medistill.report.build import build_report
from medistill.report.cards import write_model_card
from medistill.report.plots import FRONT_PLOTS, load_histories, model_label
from medistill.report.tradeoff import (
    FRONTS,
    LEAD_COLUMNS,
    add_relative_columns,
    load_evaluations,
    pareto_front,
    recommend,
)

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def front(points):
    df = pd.DataFrame(points, columns=["f1", "params"])
    return pareto_front(df, maximize="f1", minimize="params").tolist()


def test_pareto_simple_front_and_dominated_point():
    # (0.7, 30) is beaten by (0.8, 20) on both axes.
    assert front([(0.6, 10), (0.8, 20), (0.9, 40), (0.7, 30)]) == [True, True, True, False]


def test_pareto_tie_on_one_axis_more_params_is_dominated():
    assert front([(0.8, 10), (0.8, 20)]) == [True, False]


def test_pareto_tie_on_cost_lower_f1_is_dominated():
    assert front([(0.8, 10), (0.7, 10)]) == [True, False]


def test_pareto_exact_duplicates_all_kept():
    assert front([(0.8, 10), (0.8, 10), (0.5, 20)]) == [True, True, False]


def test_pareto_nan_never_on_front():
    assert front([(np.nan, 1), (0.5, np.nan), (0.4, 100)]) == [False, False, True]


def test_pareto_single_point():
    assert front([(0.5, 10)]) == [True]


def test_pareto_keeps_index():
    df = pd.DataFrame({"f1": [0.5, 0.9], "params": [1, 2]}, index=[7, 3])
    assert pareto_front(df, "f1", "params").index.tolist() == [7, 3]


def test_add_relative_columns_two_teachers():
    df = pd.DataFrame(
        {
            "teacher": ["a", "a", "b", "b", "c"],
            "task": ["ner"] * 5,
            "role": ["teacher", "student", "teacher", "student", "student"],
            "f1": [0.8, 0.6, 0.5, 0.5, 0.4],
            "latency_ms_b1": [20.0, 5.0, 10.0, 2.0, 1.0],
        }
    )
    out = add_relative_columns(df)
    assert out["f1_retention"].tolist()[:4] == pytest.approx([1.0, 0.75, 1.0, 1.0])
    assert out["speedup"].tolist()[:4] == pytest.approx([1.0, 4.0, 1.0, 5.0])
    # Teacher "c" was never evaluated: no reference, so NaN.
    assert math.isnan(out["f1_retention"].iloc[4]) and math.isnan(out["speedup"].iloc[4])
    assert "f1_retention" not in df.columns  # input left untouched


def test_retention_is_against_the_teacher_run_that_taught():
    df = pd.DataFrame(
        {
            "teacher": ["a", "a", "g", "g"],
            "task": ["ner"] * 4,
            "role": ["teacher", "student", "generative", "student"],
            "reference_teacher": [None, None, None, "g"],
            "f1": [0.8, 0.45, 0.4, 0.3],  # the teacher's mean over two seed runs
            "f1_per_seed": [[0.9, 0.7], [0.45], None, [0.3]],  # the kept run first
            "latency_ms_b1": [20.0, 5.0, 100.0, 2.0],
        }
    )
    out = add_relative_columns(df)
    # 0.45 of the kept run's 0.9, not of the mean 0.8; a tagger has no seed runs: its F1
    assert out["f1_retention"].tolist() == pytest.approx([1.0, 0.5, 1.0, 0.75])


def test_a_compressed_students_speedup_is_also_against_the_teacher_in_its_runtime():
    df = pd.DataFrame(
        {
            "teacher": ["a", "a", "a", "a", "gen"],
            "task": ["ner"] * 5,
            "role": ["teacher", "teacher-runtime", "student", "student", "generative"],
            "size": ["teacher", "teacher-int8", "L3", "L3-int8", "prompted"],
            "runtime": ["torch", "int8", "torch", "int8", None],
            "reference_teacher": [None, "a", None, None, "a"],
            "f1": [0.8, 0.78, 0.75, 0.74, 0.3],
            "latency_ms_b1": [20.0, 8.0, 10.0, 4.0, 500.0],
        }
    )
    out = add_relative_columns(df)
    # against the float teacher: 5x for the int8 student; against the int8 teacher: 2x
    assert out["speedup"].tolist()[:4] == pytest.approx([1.0, 2.5, 2.0, 5.0])
    assert out["speedup_same_runtime"].tolist()[:4] == pytest.approx([1.0, 1.0, 2.0, 2.0])
    assert math.isnan(out["speedup_same_runtime"].iloc[4])  # a generative row has no runtime twin
    assert out["f1_retention"].iloc[1] == pytest.approx(0.78 / 0.8)  # the int8 teacher keeps


def test_add_relative_columns_matches_task():
    df = pd.DataFrame(
        {
            "teacher": ["a", "a", "a"],
            "task": ["t1", "t2", "t2"],
            "role": ["teacher", "teacher", "student"],
            "f1": [0.9, 0.5, 0.4],
            "latency_ms_b1": [10.0, 8.0, 4.0],
        }
    )
    out = add_relative_columns(df)
    assert out["f1_retention"].iloc[2] == pytest.approx(0.8)
    assert out["speedup"].iloc[2] == pytest.approx(2.0)


def evaluation(teacher="camembert", corpus="teacher", size="teacher", f1=0.8, **extra):
    role = "teacher" if corpus == "teacher" else "student"
    record = {
        "teacher": teacher,
        "corpus": corpus,
        "size": size,
        "task": "quaero",
        "role": role,
        "f1": f1,
        "f1_typo5": f1 - 0.1,
        "params_total": 110_000_000 if role == "teacher" else 10_000_000,
        "params_non_embedding": 85_000_000 if role == "teacher" else 4_000_000,
        "latency_ms_b1": 20.0 if role == "teacher" else 4.0,
    }
    record.update(extra)
    return record


def write_json(path, record):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record))
    return path


def test_load_evaluations_flattens_nested_dicts(tmp_path):
    per_type = {"DISO": {"precision": 0.7, "recall": 0.9, "f1": 0.8}}
    path = write_json(tmp_path / "e.json", evaluation(per_type=per_type, note="x"))
    df = load_evaluations([path])
    assert len(df) == 1
    assert df.loc[0, "per_type.DISO.f1"] == pytest.approx(0.8)
    assert df.loc[0, "per_type.DISO.recall"] == pytest.approx(0.9)
    assert df.loc[0, "note"] == "x"


def test_load_evaluations_missing_key_names_file(tmp_path):
    record = evaluation()
    del record["f1_typo5"]
    path = write_json(tmp_path / "broken.json", record)
    with pytest.raises(ValueError, match=r"broken\.json.*f1_typo5"):
        load_evaluations([path])


def test_a_generative_row_scored_on_the_clean_set_alone_loads_with_empty_robust_scores(tmp_path):
    tagger = evaluation("llm", "generative", "prompted-3shot", role="generative")
    del tagger["f1_typo5"]
    teacher = evaluation()
    paths = [write_json(tmp_path / n, r) for n, r in (("t.json", teacher), ("g.json", tagger))]
    df = load_evaluations(paths)
    assert math.isnan(df.set_index("teacher").loc["llm", "f1_typo5"])
    assert not pareto_front(df, "f1_typo5", "params_total")[df["teacher"] == "llm"].any()


def test_load_evaluations_invalid_json_names_file(tmp_path):
    path = tmp_path / "garbage.json"
    path.write_text("{not json")
    with pytest.raises(ValueError, match=r"garbage\.json"):
        load_evaluations([path])


def test_build_report(tmp_path):
    records = [
        evaluation(),
        evaluation(corpus="wiki", size="small", f1=0.72, per_type={"DISO": {"f1": 0.7}}),
        evaluation(corpus="pubmed", size="small", f1=0.6),
        evaluation(teacher="drbert", f1=0.85),
        evaluation(teacher="drbert", corpus="wiki", size="tiny", f1=0.7),
    ]
    paths = [write_json(tmp_path / "eval" / f"{i}.json", r) for i, r in enumerate(records)]
    out_dir = tmp_path / "report"

    df = build_report(paths, out_dir)

    csv = pd.read_csv(out_dir / "tradeoff.csv")
    assert list(csv.columns[: len(LEAD_COLUMNS)]) == list(LEAD_COLUMNS)
    assert len(csv) == len(records)
    assert csv["teacher"].tolist() == ["camembert"] * 3 + ["drbert"] * 2
    assert csv["role"].tolist()[:2] == ["teacher", "student"]
    for name in ("pareto_f1_params.png", "pareto_f1_latency.png"):
        assert (out_dir / name).read_bytes()[:8] == PNG_MAGIC
    assert (out_dir / "pareto_f1_params.svg").stat().st_size > 0
    assert df["on_front_f1_params"].dtype == bool
    # pubmed student: same size as the wiki student but lower F1.
    assert not df.loc[2, "on_front_f1_params"]
    assert df.loc[1, "on_front_f1_params"]
    assert not list(out_dir.glob(".*"))  # no temp files left behind


# --- three fronts, budgets, histories, the HTML page and model cards -----------------------


def test_pareto_robust_front_uses_typo_f1():
    df = pd.DataFrame(
        {
            "f1": [0.9, 0.8, 0.7],
            "f1_typo5": [0.5, 0.7, 0.7],
            "params_total": [30, 20, 20],
        }
    )
    assert pareto_front(df, "f1", "params_total").tolist() == [True, True, False]
    # Robust F1: the 0.8/0.7 tie at 20 params keeps both, and beats the big model.
    assert pareto_front(df, "f1_typo5", "params_total").tolist() == [False, True, True]


def table(rows):
    columns = ["teacher", "corpus", "size", "task", "role", "f1", "f1_typo5"]
    columns += ["params_total", "latency_ms_b1", "disk_mb"]
    return pd.DataFrame(rows, columns=columns)


def test_recommend_best_student_within_each_budget():
    df = table(
        [
            ("t", "teacher", "teacher", "ner", "teacher", 0.95, 0.9, 100, 50.0, 400.0),
            ("t", "c", "L1", "ner", "student", 0.70, 0.6, 10, 5.0, 40.0),
            ("t", "c", "L2", "ner", "student", 0.80, 0.7, 20, 10.0, 80.0),
            ("t", "c", "L2b", "ner", "student", 0.80, 0.7, 25, 9.0, 90.0),
            ("t", "c", "L3", "ner", "student", 0.85, 0.8, 30, 15.0, np.nan),
        ]
    )
    budgets = [
        {"name": "fast", "max_latency_ms_b1": 12},
        {"name": "small", "max_params": 10},
        {"name": "tiny disk", "max_disk_mb": 100},
        {"name": "impossible", "max_params": 5},
        {"name": "good and fast", "min_f1": 0.75, "max_latency_ms_b1": 20},
    ]
    out = recommend(df, budgets).set_index("budget")
    # A tie on F1 goes to the smaller model; the teacher is never recommended.
    assert out.loc["fast", "model"] == "t/c/L2"
    assert out.loc["fast", "candidates"] == 3
    assert out.loc["small", "model"] == "t/c/L1"
    # L3 has no disk size: it does not fit a disk budget.
    assert out.loc["tiny disk", "model"] == "t/c/L2"
    assert out.loc["impossible", "model"] == "" and out.loc["impossible", "candidates"] == 0
    assert out.loc["good and fast", "model"] == "t/c/L3"
    assert out.loc["good and fast", "limits"] == "latency_ms_b1 <= 20, f1 >= 0.75"


def test_recommend_needs_a_minimum_retention_of_the_teacher():
    df = add_relative_columns(
        table(
            [
                ("t", "teacher", "teacher", "ner", "teacher", 0.90, 0.9, 100, 50.0, 400.0),
                ("t", "c", "L1", "ner", "student", 0.04, 0.0, 10, 5.0, 40.0),
                ("t", "c", "L2", "ner", "student", 0.85, 0.7, 20, 10.0, 80.0),
            ]
        )
    )
    budgets = [{"name": "fast", "max_latency_ms_b1": 6}, {"name": "mid", "max_params": 20}]
    # Without a floor the 4%-of-the-teacher student is the "fast" pick; with 90% none fits.
    assert recommend(df, budgets).set_index("budget").loc["fast", "model"] == "t/c/L1"
    out = recommend(df, budgets, min_f1_retention=0.9).set_index("budget")
    assert out.loc["fast", "model"] == "" and out.loc["fast", "candidates"] == 0
    assert out.loc["mid", "model"] == "t/c/L2"
    assert "f1_retention >= 0.9" in out.loc["mid", "limits"]
    # A budget's own floor wins over the report's.
    own = [{"name": "fast", "max_latency_ms_b1": 6, "min_f1_retention": 0.01}]
    assert recommend(df, own, min_f1_retention=0.9).loc[0, "model"] == "t/c/L1"
    # Speedup over the teacher (50 ms): L1 is 10x, L2 5x.
    faster = [{"name": "6x", "min_speedup": 6}, {"name": "4x keeping 90%", "min_speedup": 4}]
    out = recommend(df, faster, min_f1_retention=0.9).set_index("budget")
    assert out.loc["6x", "model"] == "" and out.loc["4x keeping 90%", "model"] == "t/c/L2"


def test_recommend_without_budgets_is_empty():
    assert recommend(table([]), []).empty


def test_model_label_and_histories(tmp_path):
    student = tmp_path / "results/students/t/ner/c/L1/model"
    teacher = tmp_path / "results/teachers/t/ner/model"
    for folder, loss in ((student, 1.0), (teacher, 2.0)):
        write_json(folder / "training_history.json", [{"step": 0, "loss": loss}])
    (tmp_path / "empty").mkdir()
    assert model_label(student) == "t/c/L1"
    assert model_label(teacher) == "t (teacher)"
    histories = load_histories([student, teacher, tmp_path / "empty"])
    assert histories == {
        "t/c/L1": [{"step": 0, "loss": 1.0}],
        "t (teacher)": [{"step": 0, "loss": 2.0}],
    }


CONFIG = {
    "teachers": {"camembert": {"source": "hub:almanach/camembert-bio-base", "licence": "MIT"}},
    "corpora": {
        "wiki": {"licence": "CC-BY-SA-4.0"},
        "pubmed": {"sources": [{"kind": "e3c", "path": "data/pubmed"}]},  # records' licences
    },
    "tasks": {"quaero": {"files": {"format": "brat", "path": "data/quaero"}}},
    "sweep": {"task": "quaero", "teachers": ["camembert"], "corpora": ["wiki", "pubmed"]},
    "report": {
        "budgets": [
            {"name": "under 5 ms", "max_latency_ms_b1": 5},
            {"name": "under 1M parameters", "max_params": 1_000_000},
            {"name": "under 10 parameters", "max_params": 10},
        ]
    },
}


@pytest.fixture(scope="module")
def full_report(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("report")
    records = [
        evaluation(),
        evaluation(corpus="wiki", size="small", f1=0.72),
        evaluation(corpus="pubmed", size="small", f1=0.6),
    ]
    paths = [write_json(tmp_path / "eval" / f"{i}.json", r) for i, r in enumerate(records)]
    models = [tmp_path / "results/teachers/camembert/quaero/model"]
    models += [
        tmp_path / f"results/students/camembert/quaero/{c}/small/model" for c in ("wiki", "pubmed")
    ]
    for i, folder in enumerate(models):
        history = [{"step": s, "loss": 2.0 / (s + 1 + i), "lr": 1e-4} for s in range(0, 50, 10)]
        write_json(folder / "training_history.json", history)
    out_dir = tmp_path / "report"
    df = build_report(paths, out_dir, CONFIG, models)
    return df, out_dir


def test_each_kind_of_point_has_its_own_legend_entry():
    import matplotlib.pyplot as plt

    from medistill.report.plots import _scatter_points

    df = pd.DataFrame(
        {
            "teacher": ["a", "a", "a", "a", "gen"],
            "corpus": ["teacher", "teacher", "synth", "gold", "generative"],
            "role": ["teacher", "teacher-runtime", "student", "student", "generative"],
            "size": ["teacher", "teacher-int8", "L3", "L3", "prompted"],
            "f1": [0.8, 0.78, 0.75, 0.74, 0.3],
            "latency_ms_b1": [20.0, 8.0, 10.0, 9.0, 500.0],
        }
    )
    fig, ax = plt.subplots()
    _scatter_points(ax, df, "latency_ms_b1", "f1")
    labels = ax.get_legend_handles_labels()[1]
    plt.close(fig)
    assert sorted(labels) == [
        "a / gold",
        "a / synth",
        "a / teacher",
        "a / teacher, compressed",
        "gen / generative",
    ]


def test_build_report_writes_every_plot_and_front(full_report):
    df, out_dir = full_report
    for stem in FRONT_PLOTS | {"robustness": 0, "training_curves": 0}:
        assert (out_dir / f"{stem}.png").read_bytes()[:8] == PNG_MAGIC, stem
        assert (out_dir / f"{stem}.svg").read_text().lstrip().startswith("<?xml"), stem
    csv = pd.read_csv(out_dir / "tradeoff.csv")
    for column in FRONTS:
        assert csv[column].dtype == bool, column
    assert df["on_front_typo_params"].tolist() == [True, True, False]


def test_report_html_is_self_contained(full_report):
    import re

    _, out_dir = full_report
    page = (out_dir / "report.html").read_text()
    images = re.findall(r'<img src="([^"]+)"', page)
    assert len(images) == 5 and all(src.startswith("data:image/png;base64,") for src in images)
    assert not re.search(r'(src|href)="(?!data:)', page)  # nothing fetched from elsewhere
    for text in (
        "Recommended student per budget",
        "under 5 ms",
        "camembert/wiki/small",  # the best student within both budgets
        "no student fits",  # the 10-parameter budget
        "Pareto fronts",
        "f1_typo5 up, params_total down",
        "CC-BY-SA-4.0",  # corpus licence
        "per-record licences",  # a corpus whose records carry their own
        "hub:almanach/camembert-bio-base",  # config
        "transformers",  # environment
        "cpu cores",
    ):
        assert text in page, text


def test_model_card_has_provenance_scores_and_limits(tmp_path):
    model_dir = tmp_path / "model"
    write_json(
        model_dir / "config.json",
        {
            "medistill_distillation": {
                "teacher": "camembert",
                "corpus": "wiki",
                "recipe": {"temperature": 2.0, "kl_weight": 1.0, "ce_weight": 0.5, "steps": 40},
            },
            "medistill_student": {"layers": 2, "teacher_layers_kept": [0, 11], "hidden_size": 768},
        },
    )
    write_json(
        model_dir / "training_history.json",
        [{"step": 0, "loss": 3.25}, {"step": 39, "loss": 0.5}],
    )
    record = evaluation(
        corpus="wiki",
        size="small",
        f1=0.72,
        per_type={"DISO": {"precision": 0.5, "recall": 0.25, "f1-score": 0.333, "support": 4}},
    )
    path = write_model_card(model_dir, record, CONFIG)
    card = path.read_text()
    assert path == model_dir / "README.md"
    assert card.startswith("---\nlicense: mit\n")
    for text in (
        "camembert",
        "`wiki`",
        "CC-BY-SA-4.0",  # corpus licence
        "`quaero` (data/quaero) | the dataset's own terms",  # task data, named by its path
        "| MIT |",  # teacher licence
        "layers kept: [0, 11]",
        "temperature 2.0",
        "3.2500 at step 0 -> 0.5000 at step 39",
        "| F1 (micro) | 0.720 |",
        "| F1 with typos in 5% of words | 0.620 |",
        "| parameters | 10,000,000 |",
        "| DISO | 0.500 | 0.250 | 0.333 | 4 |",
        "Intended use",
        "Not a medical device",
    ):
        assert text in card, text
    assert not list(model_dir.glob(".*"))  # written atomically, no temp file left


def test_a_gold_only_twins_card_names_no_distillation_corpus(tmp_path):
    model_dir = tmp_path / "model"
    write_json(model_dir / "config.json", {"medistill_student": {"layers": 2}})
    card = write_model_card(model_dir, evaluation(corpus="gold", size="small"), CONFIG).read_text()
    assert "| MIT |" in card and "distillation corpus" not in card


def test_baseline_columns_compare_each_student_with_its_gold_only_twin():
    from medistill.report.tradeoff import add_baseline_columns

    df = pd.DataFrame(
        {
            "teacher": ["a", "a", "a", "a", "a"],
            "corpus": ["teacher", "synth", "clean", "gold", "synth"],
            "size": ["teacher", "L1", "L1", "L1", "L2"],
            "task": ["ner"] * 5,
            "role": ["teacher", "student", "student", "student", "student"],
            "f1": [0.8, 0.6, 0.4, 0.5, 0.7],
            "p_vs_baseline": [np.nan, 0.02, 0.6, np.nan, np.nan],
        }
    )
    out = add_baseline_columns(df)
    assert out["baseline_f1"].iloc[1:3].tolist() == [0.5, 0.5]
    assert out["f1_vs_baseline"].iloc[1:3].tolist() == pytest.approx([0.1, -0.1])
    # the teacher, the baseline itself and a student without a baseline (L2) have none
    assert out["baseline_f1"].iloc[[0, 3, 4]].isna().all()
    # two comparisons in the table: the smaller p doubled (Holm), rows without a test empty
    assert out["p_holm"].iloc[1:3].tolist() == pytest.approx([0.04, 0.6])
    assert out["p_holm"].iloc[[0, 3, 4]].isna().all()


def test_a_generative_teachers_student_is_measured_against_its_tagger_and_its_inits_baseline():
    from medistill.report.tradeoff import add_baseline_columns

    df = pd.DataFrame(
        {
            "teacher": ["enc", "gen", "enc", "silver", "enc"],
            "corpus": ["teacher", "generative", "gold", "synth", "synth"],
            "size": ["teacher", "finetuned", "L1", "L1", "L1"],
            "task": ["ner"] * 5,
            "role": ["teacher", "generative", "student", "student", "student"],
            "reference_teacher": ["enc", "enc", "enc", "gen", "enc"],
            "baseline_teacher": ["enc", None, "enc", "enc", "enc"],
            "f1": [0.8, 0.4, 0.5, 0.3, 0.6],
            "latency_ms_b1": [10.0, 100.0, 5.0, 5.0, 5.0],
        }
    )
    out = add_baseline_columns(add_relative_columns(df))
    # the tagger row against the encoder teacher; its student against the tagger
    assert out["f1_retention"].tolist()[1:4] == pytest.approx([0.5, 0.625, 0.75])
    assert out["speedup"].iloc[3] == pytest.approx(20.0)
    # one baseline (the init encoder's) serves the students of both teachers
    assert out["baseline_f1"].iloc[[3, 4]].tolist() == [0.5, 0.5]
    assert out["baseline_f1"].iloc[[0, 1, 2]].isna().all()
