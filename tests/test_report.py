"""Tests for medistill.report: Pareto fronts, relative columns, loading and the full report."""

import json
import math

import numpy as np
import pandas as pd
import pytest

from medistill.report import (
    LEAD_COLUMNS,
    add_relative_columns,
    build_report,
    load_evaluations,
    pareto_front,
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
