"""Generative taggers in the NER comparison, through the workflow: a BERT2BERT tagger
fine-tuned from the smoke sweep's teacher joins its report as a row scored like the encoders;
bad tagger entries stop before any job."""

from __future__ import annotations

import json
import shutil

import pandas as pd
import pytest
import yaml
from test_workflow import ROOT, snakemake

from medistill.config import validate_config
from medistill.errors import ConfigError

SMOKE = str(ROOT / "config" / "smoke.yaml")
TAGGER = {
    "taggers": {"gen": {"kind": "finetuned", "from": "minilm-l6"}},
    "sweep": ["gen"],
    "finetune": {"steps": 4, "batch_size": 4, "learning_rate": 1e-3, "eval_every": 2},
    "generation": {"max_source": 48, "max_new_tokens": 12, "batch_size": 16},
}


@pytest.mark.integration
def test_a_finetuned_generative_tagger_is_a_row_of_the_ner_report(smoke_sweep, tmp_path):
    workdir = tmp_path / "sweep"
    shutil.copytree(smoke_sweep, workdir, symlinks=True)  # a real copy: this run writes there
    edit = tmp_path / "generative.yaml"
    edit.write_text(yaml.safe_dump({"generative": TAGGER}))
    run = snakemake(workdir, "--cores", "2", "--configfile", SMOKE, str(edit))
    assert run.returncode == 0, run.stderr[-5000:]
    assert "Finished jobid" in run.stderr and "rule distill_student" not in run.stderr

    tagger = workdir / "results" / "generative" / "gen" / "ner-synth"
    assert (tagger / "model" / "config.json").is_file()
    scores = json.loads((tagger / "eval.json").read_text())
    assert scores["role"] == "generative" and scores["licence"] == "Apache-2.0"
    assert 0.0 <= scores["f1"] <= 1.0 and scores["latency_ms_b1"] > 0
    assert {"f1_typo5", "f1_abbrev", "f1_unseen"} <= set(scores)
    parse = scores["parse"]
    assert parse["lines"] == sum(
        parse[k] for k in ("aligned", "malformed", "unknown_type", "not_found", "overlapping")
    )
    table = pd.read_csv(workdir / "results" / "report" / "tradeoff.csv")
    row = table[table["role"] == "generative"].iloc[0]
    teacher = table[table["role"] == "teacher"].iloc[0]
    assert row["teacher"] == "gen" and row["reference_teacher"] == "minilm-l6"
    assert row["f1_retention"] == pytest.approx(row["f1"] / teacher["f1"])
    assert row["speedup"] == pytest.approx(teacher["latency_ms_b1"] / row["latency_ms_b1"])
    page = (workdir / "results" / "report" / "report.html").read_text()
    assert 'id="generative"' in page and "parse.unparsed_share" in page


def _with_generative(default_config, generative):
    return default_config | {"generative": generative}


def test_bad_tagger_entries_stop_before_any_job(default_config, tmp_path):
    cases = {
        "generative.sweep names 'nope'": {"taggers": {}, "sweep": ["nope"]},
        "generative.taggers.gen.from is 'e5-large'": {
            "taggers": {"gen": {"kind": "finetuned", "from": "e5-large"}},
            "sweep": ["gen"],
        },
        "generative.taggers.llm.licence is 'Llama-3.1'": {
            "taggers": {
                "llm": {"kind": "prompted", "source": "hub:meta/llama", "licence": "Llama-3.1"}
            },
            "sweep": ["llm"],
        },
        "generative.taggers.llm.source": {
            "taggers": {
                "llm": {
                    "kind": "prompted",
                    "source": f"local:{tmp_path}/missing",
                    "licence": "Apache-2.0",
                }
            },
            "sweep": ["llm"],
        },
    }
    for message, generative in cases.items():
        with pytest.raises(ConfigError, match=message.replace(".", r"\.")):
            validate_config(_with_generative(default_config, generative), where="c.yaml")
    wrong_kind = {"taggers": {"gen": {"kind": "prompted", "from": "minilm-l6"}}, "sweep": []}
    with pytest.raises(ConfigError, match="generative"):
        validate_config(_with_generative(default_config, wrong_kind), where="c.yaml")


def test_prompted_taggers_get_their_default_shots(default_config, tmp_path):
    folder = tmp_path / "llm"
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    generative = {
        "taggers": {"llm": {"kind": "prompted", "source": f"local:{folder}", "licence": "MIT"}},
        "sweep": ["llm"],
    }
    config = validate_config(_with_generative(default_config, generative), where="c.yaml")
    assert config["generative"]["taggers"]["llm"]["shots"] == 3
    assert config["generative"]["generation"]["max_new_tokens"] == 96
