"""The Snakemake workflow itself: dry run and lint on the default config, config errors before
any job, and the whole smoke sweep end to end."""

from __future__ import annotations

import json
import os
import re
import sqlite3
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from conftest import SMOKE_RUNS

from medistill.config import TASK_FILE_PATHS

ROOT = Path(__file__).resolve().parents[1]
SNAKEMAKE = [sys.executable, "-m", "snakemake", "--snakefile", str(ROOT / "Snakefile")]


def snakemake(workdir: Path, *args: str) -> subprocess.CompletedProcess:
    env = os.environ | {"HF_HUB_OFFLINE": "1"}
    env.pop("MLFLOW_TRACKING_URI", None)
    return subprocess.run(
        [*SNAKEMAKE, "--directory", str(workdir), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=900,
    )


def test_dry_run_on_default_config_lists_every_stage(tmp_path):
    run = snakemake(tmp_path, "-n", "--cores", "2")
    assert run.returncode == 0, run.stderr
    for rule in (
        "build_corpus",
        "augment_corpus",
        "prepare_task",
        "finetune_teacher",
        "cache_teacher_logits",
        "distill_student",
        "evaluate_student",
        "evaluate_teacher",
        "report",
    ):
        assert rule in run.stdout
    assert not (tmp_path / "results").exists()
    # the corpus gives its teacher's signal only: the twin reads no corpus
    assert "results/corpus/synth/augmented.jsonl" not in _job(run.stdout, "corpus=gold, size=L3")


def _job(plan: str, wildcards: str, rule: str = "distill_student") -> str:
    """The block of a dry run's plan for the `rule` job with these wildcards."""
    jobs = re.split(r"^\[[^\]]+\]$", plan, flags=re.MULTILINE)  # each job opens with its date
    blocks = [b for b in jobs if f"rule {rule}:" in b and f"{wildcards}\n" in b]
    assert len(blocks) == 1, wildcards
    return blocks[0]


def test_twins_learn_a_corpus_gold_tags_when_students_do(tmp_path):
    edit = tmp_path / "corpus-gold.yaml"
    edit.write_text("distill: {corpus_gold: true}\n")
    run = snakemake(tmp_path, "-n", "--cores", "2", "--configfile", str(edit))
    assert run.returncode == 0, run.stderr
    assert "results/corpus/synth/augmented.jsonl" in _job(run.stdout, "corpus=gold, size=L3")


def test_full_grid_config_plans_both_teachers_on_both_corpora(tmp_path):
    grid = str(ROOT / "config" / "full-grid.yaml")
    run = snakemake(tmp_path, "-n", "--cores", "2", "--configfile", grid)
    assert run.returncode == 0, run.stderr
    for teacher in ("e5-small", "minilm-l6"):
        for corpus in ("synth", "synth-clean", "gold"):
            assert f"results/eval/{teacher}/{corpus}/L3-int8/ner-synth.json" in run.stdout


def test_student_grid_config_plans_every_shape_and_the_mix(tmp_path):
    grid = str(ROOT / "config" / "students-grid.yaml")
    run = snakemake(tmp_path, "-n", "--cores", "2", "--configfile", grid)
    assert run.returncode == 0, run.stderr
    for rule in ("prepare_teacher", "cache_general", "compress_student", "distill_student"):
        assert f"rule {rule}:" in run.stdout or f"localrule {rule}:" in run.stdout
    # The mix's student reads both members' task caches and starts from its init teacher.
    mix_job = next(
        block
        for block in run.stdout.split("\n\n")
        if "output: results/students/e5-minilm/ner-synth/synth/L2/model" in block
    )
    assert "results/cache/e5-small/synth/task/ner-synth/manifest.json" in mix_job
    assert "results/cache/minilm-l6/synth/task/ner-synth/manifest.json" in mix_job
    assert "results/teachers/e5-small/ner-synth/model" in mix_job


def test_lint_is_clean(tmp_path):
    run = snakemake(tmp_path, "--lint")
    assert run.returncode == 0, run.stdout + run.stderr
    assert "Lints for" not in run.stdout, run.stdout


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ("distill:\n  stepz: 3\n", "distill.stepz"),
        ("sizes:\n  L1: {layers: 0}\n", "sizes.L1.layers"),
        ("teachers:\n  minilm-l6: {source: 'local:/nowhere/model'}\n", "teachers.minilm-l6.source"),
        (
            "corpora:\n  synth:\n    sources:\n      - {kind: synthetic, n_docs: 5, seed: 1}\n"
            "      - {kind: text, path: notes/missing.txt, licence: MIT}\n",
            "corpora.synth.sources[1].path: notes/missing.txt does not exist",
        ),
    ],
)
def test_bad_config_stops_before_any_job(tmp_path, override, expected):
    bad = tmp_path / "bad.yaml"
    bad.write_text(override)
    run = snakemake(tmp_path, "--cores", "1", "--configfile", str(bad))
    assert run.returncode != 0
    assert expected in run.stderr + run.stdout
    assert "bad.yaml" in run.stderr + run.stdout
    assert not (tmp_path / "results").exists()


@pytest.mark.integration
def test_smoke_sweep_end_to_end(smoke_sweep):
    results = smoke_sweep / "results"

    table = pd.read_csv(results / "report" / "tradeoff.csv")
    sizes = ["G1", "L1", "L1-int8", "L2-narrow"]
    assert sorted(table["size"]) == sorted(["teacher", "teacher-int8", *sizes, *sizes])
    baselines = table[table["corpus"] == "gold"].set_index("size")
    assert len(baselines) == 4  # one per student: gold labels alone, same steps
    distilled = table[table["corpus"] == "synth"].set_index("size")
    assert distilled["baseline_f1"].tolist() == baselines.loc[distilled.index, "f1"].tolist()
    assert baselines["baseline_f1"].isna().all()
    # two seeds per model: the mean, the spread, and the kept run first
    for row in table.itertuples():
        per_seed = json.loads(row.f1_per_seed)
        assert sorted(json.loads(row.seeds)) == [13, 14] and len(per_seed) == 2
        assert row.f1 == pytest.approx(sum(per_seed) / 2)
    assert (table["f1_std"] >= 0).all()
    for column in ("energy_kwh_train", "co2_kg_train", "energy_kwh_inference"):
        assert (table[column] > 0).all(), column
    assert set(table["energy_country"]) == {"FRA"}
    history = json.loads(
        (results / "students/minilm-l6/ner-synth/synth/L1/model/training_history.json").read_text()
    )
    assert [p["step"] for p in history if "dev_f1" in p] == [4, 9]  # eval_every 5, 10 steps
    for column in (
        "teacher",
        "corpus",
        "size",
        "task",
        "f1",
        "f1_typo5",
        "params_total",
        "params_non_embedding",
        "latency_ms_b1",
        "f1_retention",
        "speedup",
    ):
        assert table[column].notna().all(), column
    assert table["f1"].between(0, 1).all()
    teacher = table[table["role"] == "teacher"].iloc[0]
    students = table[table["corpus"] == "synth"].set_index("size")
    narrow = students.loc["L2-narrow"]
    assert narrow["params_non_embedding"] < students.loc["L1", "params_non_embedding"]
    assert students.loc["L1", "params_non_embedding"] < teacher["params_non_embedding"]
    assert narrow["student.hidden_size"] == 192 and narrow["student.init"] == "svd"
    # int8: same parameters as its source, less disk
    int8 = students.loc["L1-int8"]
    assert int8["student.compression"] == "int8-dynamic"
    assert int8["params_total"] == students.loc["L1", "params_total"]
    assert int8["disk_mb"] < students.loc["L1", "disk_mb"]
    # the teacher in int8 too: the int8 student's same-runtime speedup is against it, a float
    # student's against the float teacher
    teacher_int8 = table[table["role"] == "teacher-runtime"].iloc[0]
    assert teacher_int8["size"] == "teacher-int8" and teacher_int8["runtime"] == "int8"
    assert teacher_int8["disk_mb"] < teacher["disk_mb"]
    assert int8["speedup_same_runtime"] == pytest.approx(
        teacher_int8["latency_ms_b1"] / int8["latency_ms_b1"]
    )
    assert students.loc["L1", "speedup_same_runtime"] == pytest.approx(
        students.loc["L1", "speedup"]
    )
    for column in ("throughput_b32_tokens_s", "peak_rss_mb"):
        assert (table[column] > 0).all(), column
    assert (results / "report" / "pareto_f1_params.png").read_bytes()[:4] == b"\x89PNG"

    evaluation = json.loads((results / "eval/minilm-l6/synth/L1/ner-synth.json").read_text())
    assert evaluation["student"]["teacher_layers_kept"] == [0]
    # the twin comparison resampled the synthetic test documents and both models' two seeds
    test_documents = {
        s["doc"] for s in map(json.loads, open(results / "tasks/ner-synth/test.jsonl"))
    }
    assert evaluation["bootstrap_unit"] == "documents" and evaluation["bootstrap_runs"] == [2, 2]
    assert evaluation["bootstrap_units"] == len(test_documents) > 1
    assert 0 < evaluation["p_vs_baseline"] <= 1 and 0 < evaluation["p_vs_baseline_sentences"] <= 1
    compared = table[table["p_vs_baseline"].notna()]
    assert len(compared) == 4 and (compared["p_holm"] >= compared["p_vs_baseline"]).all()
    manifest = json.loads(
        (results / "cache/minilm-l6/synth/task/ner-synth/manifest.json").read_text()
    )
    assert manifest["kind"] == "task" and manifest["shape"][1] == 11
    general = json.loads((results / "cache/minilm-l6/synth/general/manifest.json").read_text())
    assert general["kind"] == "hidden" and general["hidden_layers"] == [6]
    # The teacher was trimmed to the smoke corpus's vocabulary; its students inherit it.
    trimmed = json.loads((results / "teachers/minilm-l6/base/prepare_stats.json").read_text())
    assert trimmed["vocab_after"] < trimmed["vocab_before"] == 30522

    # The student folder opens with the stock Hugging Face pipeline.
    from transformers import pipeline

    tagger = pipeline(
        "token-classification", model=str(results / "students/minilm-l6/ner-synth/synth/L1/model")
    )
    assert isinstance(tagger("Patient traité par amoxicilline pour une pneumopathie."), list)

    # Every fine-tune, distillation and evaluation is an MLflow run, with no corpus text.
    with sqlite3.connect(results / "mlflow.db") as db:
        names = sorted(
            row[0] for row in db.execute("select name from runs where lifecycle_stage='active'")
        )
        params = " ".join(str(row[0]) for row in db.execute("select value from params"))
        gold_shares = [
            row[0] for row in db.execute("select value from metrics where key='gold_share'")
        ]
    assert sum(name.startswith("sweep/") for name in names) == 1
    assert [name for name in names if not name.startswith("sweep/")] == sorted(SMOKE_RUNS)
    # distilled students log the share of gold train sentences their mix actually gave
    # (gold_ratio 0.25, the train split repeated a whole number of times); baselines 1.0
    assert gold_shares and all(0.2 < share <= 1.0 for share in gold_shares)
    assert any(share < 1.0 for share in gold_shares)
    first_doc = json.loads((results / "corpus/synth/documents.jsonl").open().readline())
    assert first_doc["text"][:40] not in params

    again = snakemake(
        smoke_sweep, "-n", "--cores", "2", "--configfile", str(ROOT / "config" / "smoke.yaml")
    )
    assert "Nothing to be done" in again.stdout + again.stderr


# The example studies with hub teachers (config/*-hub.yaml), each as the files stacked on the
# default config, and the task its sweep evaluates on.
HUB_STUDIES = {
    "quaero-emea": (["quaero-hub/base.yaml"], "quaero-emea"),
    "quaero-medline": (["quaero-hub/base.yaml", "quaero-hub/medline.yaml"], "quaero-medline"),
    "e3c": (["e3c-hub/base.yaml"], "e3c-xmi"),
}
HUB_REPOS = ("almanach/camembert-bio-base", "Dr-BERT/DrBERT-7GB", "almanach/camembertav2-base")


HUB_TEACHER_SHAPE = {
    "hidden_size": 768,
    "num_hidden_layers": 12,
    "num_attention_heads": 12,
    "intermediate_size": 3072,
    "architectures": ["AutoModelForMaskedLM"],
}


def _fake_hub_cache(cache: Path, models: dict | None = None) -> Path:
    """A Hugging Face hub cache holding each model's config.json alone (by default the hub
    teachers, with their real shape: 12 layers, width 768, 12 heads, feed-forward 3072), so the
    config check resolves them offline and checks the student sizes against them, as on a
    machine that downloaded them."""
    commit = "0" * 40
    for repo, model_config in (models or dict.fromkeys(HUB_REPOS, HUB_TEACHER_SHAPE)).items():
        folder = cache / ("models--" + repo.replace("/", "--"))
        (folder / "refs").mkdir(parents=True)
        (folder / "refs" / "main").write_text(commit)
        snapshot = folder / "snapshots" / commit
        snapshot.mkdir(parents=True)
        (snapshot / "config.json").write_text(json.dumps(model_config))
    return cache


def _fake_local_data(workdir: Path, config: dict) -> None:
    """Empty stand-ins for the corpus sources and task files a study reads from disk (relative
    to `workdir`), as on the machine the study is written for."""
    paths = [s["path"] for c in config["corpora"].values() for s in c["sources"] if "path" in s]
    for task in config["tasks"].values():
        paths += [task.get("files", {}).get(key) for key in TASK_FILE_PATHS]
    paths = [path for path in paths if path]
    for path in map(Path, paths):
        if path.suffix:  # a file
            (workdir / path).parent.mkdir(parents=True, exist_ok=True)
            (workdir / path).touch()
        else:
            (workdir / path).mkdir(parents=True, exist_ok=True)


def _stacked_config(files: list[str]) -> dict:
    """The default config with `files` merged over it, key by key, as `--configfile` does."""
    import yaml
    from snakemake.utils import update_config

    config = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    for name in files:
        update_config(config, yaml.safe_load((ROOT / "config" / name).read_text()))
    return config


@pytest.mark.integration
def test_recipe_levers_run_end_to_end(smoke_sweep, tmp_path):
    """The smoke sweep again with every recipe lever switched on: the teacher's two seed runs
    averaged, its hidden states transferred, steps sized from epochs, one size cut from the
    pretrained teacher; the teacher itself is not retrained."""
    import shutil

    from medistill.core.io import read_jsonl
    from medistill.data.spans import read_sentences
    from medistill.ner.distill import mix_examples

    workdir = tmp_path / "sweep"
    shutil.copytree(smoke_sweep, workdir, symlinks=True)
    levers = tmp_path / "levers.yaml"
    levers.write_text(
        "teachers: {minilm-l6: {average_seeds: true}}\n"
        "sizes: {L2-narrow: {cut_from: pretrained}}\n"
        "distill: {epochs: 0.1, intermediate: {hidden_weight: 1.0, relation_weight: 0.5}}\n"
    )
    smoke = str(ROOT / "config" / "smoke.yaml")
    run = snakemake(workdir, "--cores", "2", "--configfile", smoke, str(levers))
    assert run.returncode == 0, run.stderr[-5000:]
    assert "finetune_teacher" not in run.stderr
    cache = workdir / "results" / "cache" / "minilm-l6"
    averaged = json.loads((cache / "synth/task/ner-synth/manifest.json").read_text())
    assert averaged["teacher_sha"].count("+") == 1  # the kept run and the other seed's
    for hidden_cache in ("synth/hidden/ner-synth", "task-hidden-train/ner-synth"):
        manifest = json.loads((cache / hidden_cache / "manifest.json").read_text())
        assert manifest["kind"] == "hidden" and manifest["hidden_layers"] == [6]
        assert manifest["hidden_input"] == "unmasked"

    def distillation(corpus, size):
        folder = workdir / "results/students/minilm-l6/ner-synth" / corpus / size / "model"
        return json.loads((folder / "config.json").read_text())["medistill_distillation"]

    transfer = read_sentences(workdir / "results/corpus/synth/augmented.jsonl", 64)
    gold = read_jsonl(workdir / "results/tasks/ner-synth/train.jsonl")
    mixed = len(mix_examples(transfer, gold, 0.25))
    steps = -(-mixed // 80)  # 0.1 epoch of the mixed data at batch 8
    assert distillation("synth", "L1")["recipe"]["steps"] == steps
    assert distillation("gold", "L1")["recipe"]["steps"] == steps  # the same budget
    assert distillation("synth", "L1")["cut_from"] == "fine-tuned"
    assert distillation("synth", "L2-narrow")["cut_from"] == "pretrained"
    assert distillation("gold", "L2-narrow")["cut_from"] == "pretrained"
    table = pd.read_csv(workdir / "results" / "report" / "tradeoff.csv")
    assert len(table) == 10 and table["f1"].notna().all()  # with the teacher in int8


def test_the_e3c_task_reads_its_document_folder_as_an_input(tmp_path):
    """An edit of the XMI files that name each sentence's document reruns the task."""
    workdir = tmp_path / "work"
    _fake_local_data(workdir, _stacked_config(["e3c/base.yaml"]))
    run = snakemake(
        workdir, "-n", "--cores", "2", "--configfile", str(ROOT / "config" / "e3c/base.yaml")
    )
    assert run.returncode == 0, run.stderr[-3000:]
    job = _job(run.stdout, "task=e3c", rule="prepare_task")
    assert "../shared/data/e3c-fr/annotation/layer1" in job.split("input:")[1].split("\n")[0]


def test_offline_e3c_study_and_its_ablation_validate(tmp_path, monkeypatch):
    import copy

    from medistill.config import validate_config

    workdir = tmp_path / "work"
    study = _stacked_config(["e3c/base.yaml"])
    _fake_local_data(workdir, study)
    monkeypatch.chdir(workdir)
    config = validate_config(copy.deepcopy(study), where="e3c/base.yaml")
    assert config["sweep"]["teachers"] == ["e5-small"] and config["seeds"] == 3
    assert config["teachers"]["e5-small"]["seeds"] == 1
    assert config["distill"]["gold_ratio"] > 0 and config["distill"]["patience"] > 0
    # The ablation: a MiniLM teacher of three runs (its seed-averaging lever), short students.
    ablation = validate_config(
        _stacked_config(["e3c/base.yaml", "e3c/ablation.yaml"]), where="e3c/ablation.yaml"
    )
    assert ablation["sweep"]["teachers"] == ["minilm-l6"] and ablation["sweep"]["sizes"] == ["L3"]
    assert ablation["distill"]["steps"] == 200 and ablation["distill"]["patience"] == 0
    assert ablation["teachers"]["minilm-l6"]["finetune"]["learning_rate"] == 2e-4
    assert ablation["teachers"]["minilm-l6"]["seeds"] == 3
    # The 6-layer students: the same study, all steps run and the last kept, nothing else changed.
    six = validate_config(_stacked_config(["e3c/base.yaml", "e3c/l6.yaml"]), where="e3c/l6.yaml")
    assert six["sweep"]["sizes"] == ["L6", "L6-int8c", "L6-onnx8"]
    assert six["distill"] == config["distill"] | {"patience": 0, "keep": "last"}
    assert {k: six[k] for k in ("finetune", "corpora", "teachers", "seeds")} == {
        k: config[k] for k in ("finetune", "corpora", "teachers", "seeds")
    }
    # Mantra: the same recipe on another corpus; only the task differs from the E3C study.
    mantra_stack = _stacked_config(["e3c/base.yaml", "e3c/mantra.yaml"])
    _fake_local_data(workdir, mantra_stack)
    mantra = validate_config(mantra_stack, where="e3c/mantra.yaml")
    assert mantra["sweep"] == {**config["sweep"], "task": "mantra"}
    shared = ("finetune", "distill", "sizes", "corpora", "seeds")
    assert {key: mantra[key] for key in shared} == {key: config[key] for key in shared}
    for name, teacher in config["teachers"].items():  # each teacher is fine-tuned on the task
        assert mantra["teachers"][name] == {**teacher, "task": "mantra"}


@pytest.mark.parametrize("study", sorted(HUB_STUDIES))
def test_hub_study_configs_pass_validation(study, tmp_path, monkeypatch):
    import copy

    from huggingface_hub import constants

    from medistill.config import validate_config
    from medistill.core.errors import ConfigError

    files, task = HUB_STUDIES[study]
    raw = _stacked_config(files)
    workdir = tmp_path / "work"
    _fake_local_data(workdir, raw)
    monkeypatch.chdir(workdir)
    # A fresh machine (empty cache): allowed to download, so the teachers wait for run time.
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "empty"))
    config = validate_config(copy.deepcopy(raw), where=", ".join(files))
    assert config["sweep"]["task"] == task and config["allow_network"] is True
    assert config["seeds"] == 5 and config["sweep"]["baselines"] is True
    assert config["finetune"]["learning_rate"] == 5e-5
    for recipe in (config["finetune"], config["distill"]):
        assert recipe["eval_every"] < recipe["steps"] and recipe["patience"] > 0
    assert config["resources"]["gpu_rules"]["gpu"] == 1
    teachers = {n: config["teachers"][n] for n in config["sweep"]["teachers"]}
    assert sorted(t["source"].removeprefix("hub:") for t in teachers.values()) == sorted(HUB_REPOS)
    assert all(t["licence"] in config["licences"]["allowed"] for t in teachers.values())

    # With the teachers in the cache, every swept size is checked against their shape.
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(_fake_hub_cache(tmp_path / "hub")))
    validate_config(copy.deepcopy(raw), where=", ".join(files))
    raw["sizes"]["L13"] = {"layers": 13}
    raw["sweep"]["sizes"] = [*raw["sweep"]["sizes"], "L13"]
    with pytest.raises(ConfigError, match=r"sizes\.L13 with teacher .* more than the teacher's 12"):
        validate_config(raw, where=", ".join(files))


@pytest.mark.parametrize("study", sorted(HUB_STUDIES))
def test_hub_study_configs_plan_the_whole_grid(study, tmp_path, monkeypatch):
    files, task = HUB_STUDIES[study]
    monkeypatch.setenv("HF_HUB_CACHE", str(_fake_hub_cache(tmp_path / "hub")))
    workdir = tmp_path / "work"
    _fake_local_data(workdir, _stacked_config(files))
    configfiles = [str(ROOT / "config" / name) for name in files]
    run = snakemake(workdir, "-n", "--cores", "2", "--configfile", *configfiles)
    assert run.returncode == 0, run.stderr
    stats = run.stdout.split("Job stats:")[1].split("\n\n")[0]
    counts = {line.split()[0]: int(line.split()[1]) for line in stats.splitlines()[3:]}
    # 3 teachers x 2 corpora (the distillation corpus and the gold-only baselines) x 3 trained
    # sizes, each with 2 int8 copies; 5 seeds run inside each training job.
    expected = {
        "prepare_task": 1,
        "finetune_teacher": 3,
        "cache_teacher_logits": 3,
        "distill_student": 18,
        "compress_student": 12,
        "compress_teacher": 3,  # each teacher in int8 too, for same-runtime speedups
        "evaluate_teacher": 3,
        "evaluate_teacher_runtime": 3,
        "evaluate_student": 30,
        "report": 1,
    }
    assert {rule: counts.get(rule) for rule in expected} == expected, stats
    assert f"results/tasks/{task}/train.jsonl" in run.stdout
    other_tasks = {t for _, t in HUB_STUDIES.values()} - {task}
    assert not any(f"results/tasks/{t}/" in run.stdout for t in other_tasks)
    finetune = run.stdout.split("rule finetune_teacher:")[1].split("\n[")[0]  # up to the next job
    assert "gpu=1" in finetune and "gpu_model=a100" in finetune
    assert not (workdir / "results").exists()
