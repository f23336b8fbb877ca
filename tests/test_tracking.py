"""MLflow tracking: nested, idempotent runs; an unreachable server costs one warning, and the
re-log fills the store later with no duplicate. The integration test runs the smoke sweep with
the server down, then starts a real `mlflow server` and re-logs into it."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
import warnings
import zipfile
from pathlib import Path

import pytest
from conftest import SMOKE_RUNS
from test_report_html import CHROMIUM, assert_page_renders

from medistill import tracking
from medistill.core.hashing import config_hash

ROOT = Path(__file__).resolve().parents[1]
SNAKEMAKE = [sys.executable, "-m", "snakemake", "--snakefile", str(ROOT / "Snakefile")]
SMOKE = ["--cores", "2", "--configfile", str(ROOT / "config" / "smoke.yaml")]
WARNING = "MLflow tracking at"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> str:
    """One SQLite store for the unit tests (each uses its own experiment): created once."""
    return f"sqlite:///{tmp_path_factory.mktemp('store') / 'mlflow.db'}"


@pytest.fixture(autouse=True)
def fresh_warning_state(monkeypatch):
    monkeypatch.setattr(tracking, "_failed_uris", set())
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)


def make_config(uri: str, experiment: str) -> dict:
    return {
        "seed": 1,
        "tracking": {"experiment": experiment, "uri": uri},
        "sweep": {"task": "ner", "teachers": ["t"], "corpora": ["c"], "sizes": ["L1"]},
        "teachers": {"t": {"source": "local:/models/t", "licence": "MIT"}},
        "corpora": {"c": {"licence": "CC0-1.0"}},
        "distill": {"steps": 3, "temperature": 2.0},
    }


def log_distill(config, results, loss=0.5):
    artifact = results / "eval.json"
    artifact.parent.mkdir(parents=True, exist_ok=True)
    artifact.write_text(json.dumps({"f1": 0.5}))
    return tracking.log_run(
        config,
        "distill/t/c/L1",
        params={"distill": config["distill"], "seed": 1},
        metrics={"final_train_loss": loss, "params_total": 1000},
        tags={"stage": "distill", "teacher": "t", "corpus": "c", "size": "L1"},
        history=[{"step": 0, "loss": 2.0, "lr": 1e-4}, {"step": 2, "loss": loss, "lr": 0.0}],
        artifacts=[artifact],
        results_dir=results,
    )


def active_runs(uri: str, experiment: str) -> list:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(uri)
    found = client.get_experiment_by_name(experiment)
    return client.search_runs([found.experiment_id]) if found else []


def test_log_run_is_nested_tagged_and_idempotent(tmp_path, store):
    from mlflow.tracking import MlflowClient

    config = make_config(store, "nested")
    results = tmp_path / "results"
    run_id = log_distill(config, results)
    assert run_id is not None

    client = MlflowClient(store)
    run = client.get_run(run_id)
    parent = client.get_run(run.data.tags["mlflow.parentRunId"])
    digest = config_hash(config)
    assert parent.info.run_name == f"sweep/{digest}"
    assert parent.data.params["sweep.teachers"] == "['t']"
    assert parent.data.tags["licence.teacher.t"] == "MIT"
    tags = run.data.tags
    assert tags["medistill_key"] == f"distill/t/c/L1@{digest}"
    expected = {"teacher": "t", "corpus": "c", "size": "L1", "task": "ner", "config_hash": digest}
    assert expected.items() <= tags.items()
    assert tags["licence.teacher"] == "MIT" and tags["licence.corpus"] == "CC0-1.0"
    assert tags["git_commit"]
    assert run.data.params["distill.temperature"] == "2.0"
    history = client.get_metric_history(run_id, "train_loss")
    assert [(m.step, m.value) for m in history] == [(0, 2.0), (2, 0.5)]
    assert {a.path for a in client.list_artifacts(run_id)} == {
        "eval.json",
        "training_history.json",
    }

    # The same result again: nothing new. A rerun with another result replaces the run.
    assert log_distill(config, results) == run_id
    assert len(active_runs(store, "nested")) == 2
    rerun = log_distill(config, results, loss=0.25)
    assert rerun != run_id
    runs = active_runs(store, "nested")
    assert sorted(r.info.run_id for r in runs) == sorted([rerun, parent.info.run_id])


def test_unreachable_server_warns_once_then_relog_fills_store_without_duplicates(tmp_path, store):
    results = tmp_path / "results"
    down = make_config(f"http://127.0.0.1:{free_port()}", "relogged")
    start = time.monotonic()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert log_distill(down, results) is None
        assert (
            tracking.log_run(
                down,
                "evaluate/t/c/L1/ner",
                params={},
                metrics={"f1": 0.5},
                tags={"stage": "evaluate", "teacher": "t", "corpus": "c", "size": "L1"},
                results_dir=results,
            )
            is None
        )
    assert time.monotonic() - start < 60  # no minutes of retries
    messages = [str(w.message) for w in caught if WARNING in str(w.message)]
    assert len(messages) == 1, messages
    assert "python -m medistill.tracking relog" in messages[0]
    assert len(list((results / "tracking" / "runs").glob("*.json"))) == 2

    assert tracking.relog(results, uri=store) == {"logged": 2, "present": 0}
    assert tracking.relog(results, uri=store) == {"logged": 0, "present": 2}
    runs = active_runs(store, "relogged")
    names = sorted(r.info.run_name for r in runs)
    assert names == sorted(["distill/t/c/L1", "evaluate/t/c/L1/ner", f"sweep/{config_hash(down)}"])
    parent = next(r for r in runs if r.info.run_name.startswith("sweep/"))
    children = [r for r in runs if r is not parent]
    assert all(r.data.tags["mlflow.parentRunId"] == parent.info.run_id for r in children)


def test_attach_artifacts_adds_to_the_logged_run(tmp_path, store):
    from mlflow.tracking import MlflowClient

    config = make_config(store, "attached")
    results = tmp_path / "results"
    run_id = log_distill(config, results)
    card = results / "model" / "README.md"
    card.parent.mkdir(parents=True)
    card.write_text("# card\n")
    assert tracking.attach_artifacts(config, "distill/t/c/L1", [card], results) == run_id
    paths = {a.path for a in MlflowClient(store).list_artifacts(run_id)}
    assert "README.md" in paths
    # The record now matches the run: a re-log finds nothing missing.
    assert tracking.relog(results, uri=store) == {"logged": 0, "present": 1}


def test_relog_cli(tmp_path, store, capsys):
    results = tmp_path / "results"
    with pytest.warns(UserWarning, match=WARNING):
        log_distill(make_config(f"http://127.0.0.1:{free_port()}", "cli"), results)
    assert tracking.main(["relog", "--results", str(results), "--uri", store]) == 0
    assert "1 run(s) logged, 0 already present" in capsys.readouterr().out


# --------------------------------------------------------------------------- integration


def snakemake(workdir: Path, env: dict, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*SNAKEMAKE, "--directory", str(workdir), *args],
        cwd=workdir,
        capture_output=True,
        text=True,
        env=env,
        timeout=1200,
    )


def start_server(tmp_path: Path, port: int) -> subprocess.Popen:
    """A real `mlflow server` on 127.0.0.1: SQLite backend and artifacts in tmp_path."""
    log = open(tmp_path / "mlflow-server.log", "w")  # noqa: SIM115 - closed with the process
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mlflow",
            "server",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            "1",
            "--backend-store-uri",
            f"sqlite:///{tmp_path / 'server.db'}",
            "--artifacts-destination",
            str(tmp_path / "server-artifacts"),
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        assert server.poll() is None, (tmp_path / "mlflow-server.log").read_text()[-3000:]
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as reply:
                if reply.status == 200:
                    return server
        except OSError:
            time.sleep(1)
    server.terminate()
    raise AssertionError("mlflow server did not answer /health within 180 s")


def stop_server(server: subprocess.Popen) -> None:
    server.terminate()
    try:
        server.wait(timeout=30)
    except subprocess.TimeoutExpired:
        server.kill()
        server.wait()


def check_server(uri: str, results: Path) -> dict[str, str]:
    """Every step of the sweep is on the server exactly once, nested, with its content."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(uri)
    runs = active_runs(uri, "medistill")
    keys = [r.data.tags["medistill_key"] for r in runs]
    assert len(keys) == len(set(keys)), "duplicate runs"
    parents = [r for r in runs if r.info.run_name.startswith("sweep/")]
    assert len(parents) == 1
    parent_id = parents[0].info.run_id
    by_name = {r.info.run_name: r for r in runs if r is not parents[0]}
    assert set(by_name) == SMOKE_RUNS
    for name, run in by_name.items():
        assert run.info.status == "FINISHED", name
        tags = run.data.tags
        assert tags["mlflow.parentRunId"] == parent_id, name
        for tag in ("teacher", "corpus", "size", "task", "git_commit", "config_hash"):
            assert tags.get(tag), (name, tag)
        if name != "report":
            assert tags["licence.teacher"] == "Apache-2.0", name
        assert run.data.params, name
    artifacts = {
        n: {a.path for a in client.list_artifacts(r.info.run_id)} for n, r in by_name.items()
    }
    for name in ("finetune/minilm-l6/ner-synth", "distill/minilm-l6/synth/L1"):
        model = (
            "teachers/minilm-l6/ner-synth"
            if "finetune" in name
            else "students/minilm-l6/ner-synth/synth/L1"
        )
        saved = json.loads((results / model / "model" / "training_history.json").read_text())
        curve = client.get_metric_history(by_name[name].info.run_id, "train_loss")
        assert [m.step for m in curve] == [p["step"] for p in saved if "loss" in p], name
        dev = client.get_metric_history(by_name[name].info.run_id, "dev_f1")
        assert [m.value for m in dev] == [p["dev_f1"] for p in saved if "dev_f1" in p], name
        assert "training_history.json" in artifacts[name]
    evaluation = by_name["evaluate/minilm-l6/synth/L1/ner-synth"]
    on_disk = json.loads((results / "eval/minilm-l6/synth/L1/ner-synth.json").read_text())
    for metric in ("f1", "f1_typo5", "params_total", "latency_ms_b1"):
        assert evaluation.data.metrics[metric] == pytest.approx(on_disk[metric]), metric
    for name in SMOKE_RUNS:
        if name.startswith("evaluate/"):
            assert artifacts[name] == {"ner-synth.json", "README.md"}, name
    assert {
        "report.html",
        "tradeoff.csv",
        "pareto_f1_params.png",
        "pareto_f1_latency.png",
        "pareto_typo_params.png",
        "pareto_f1_params.svg",
        "training_curves.png",
        "robustness.png",
    } <= artifacts["report"]
    return {name: run.info.run_id for name, run in by_name.items()}


@pytest.mark.integration
def test_smoke_sweep_with_server_down_then_relog_then_live_server(tmp_path):
    port = free_port()
    uri = f"http://127.0.0.1:{port}"
    env = os.environ | {"HF_HUB_OFFLINE": "1", "MLFLOW_TRACKING_URI": uri}
    results = tmp_path / "results"

    # 1. The server is down: the sweep still finishes, each logging job warns once.
    run = snakemake(tmp_path, env, *SMOKE)
    assert run.returncode == 0, run.stderr[-5000:]
    logs = [results / "logs" / "report.log"]
    logs += list((results / "logs").glob("prepare_teacher/*.log"))
    logs += list((results / "logs").glob("finetune_teacher/**/*.log"))
    logs += list((results / "logs").glob("distill_student/**/*.log"))
    logs += list((results / "logs").glob("evaluate/**/*.log"))
    assert len(logs) == len(SMOKE_RUNS)
    for log in logs:
        assert log.read_text().count(WARNING) == 1, log
    assert not (results / "mlflow.db").exists()
    cards = list((results / "students").glob("*/*/*/*/model/README.md"))
    cards += list((results / "teachers").glob("*/*/model/README.md"))
    assert len(cards) == 9  # the teacher, four students (the int8 one included), four baselines
    assert "Intended use" in cards[0].read_text()

    server = start_server(tmp_path, port)
    try:
        # 2. The re-log fills the server; a second re-log adds nothing.
        relog = [sys.executable, "-m", "medistill.tracking", "relog", "--results", "results"]
        first = subprocess.run(relog, cwd=tmp_path, env=env, capture_output=True, text=True)
        assert first.returncode == 0, first.stderr[-3000:]
        assert f"{len(SMOKE_RUNS)} run(s) logged, 0 already present" in first.stdout
        ids = check_server(uri, results)
        again = subprocess.run(relog, cwd=tmp_path, env=env, capture_output=True, text=True)
        present = f"0 run(s) logged, {len(SMOKE_RUNS)} already present"
        assert present in again.stdout, again.stdout + again.stderr
        assert check_server(uri, results) == ids

        # 3. The server is up: a rerun of one student logs straight to it, replacing its runs.
        rerun = snakemake(
            tmp_path, env, *SMOKE, "--forcerun", "results/eval/minilm-l6/synth/L1/ner-synth.json"
        )
        assert rerun.returncode == 0, rerun.stderr[-5000:]
        assert WARNING not in rerun.stderr
        after = check_server(uri, results)
        assert (
            after["evaluate/minilm-l6/synth/L1/ner-synth"]
            != ids["evaluate/minilm-l6/synth/L1/ner-synth"]
        )
        assert after["finetune/minilm-l6/ner-synth"] == ids["finetune/minilm-l6/ner-synth"]
    finally:
        stop_server(server)

    # 4. Cards written into the model folders do not make Snakemake rerun anything.
    dry = snakemake(tmp_path, env, *SMOKE, "-n")
    assert "Nothing to be done" in dry.stdout + dry.stderr, dry.stdout[-3000:]

    # 5. Snakemake's own report holds the Pareto plots.
    report = snakemake(tmp_path, env, *SMOKE, "--report", str(tmp_path / "report.zip"))
    assert report.returncode == 0, report.stderr[-5000:]
    names = zipfile.ZipFile(tmp_path / "report.zip").namelist()
    for plot in ("pareto_f1_params.png", "pareto_f1_latency.png", "pareto_typo_params.png"):
        assert any(n.endswith(plot) for n in names), (plot, names)
    assert any(n.endswith("report.html") for n in names)

    # 6. The sweep's own report.html renders its plots in a browser.
    if CHROMIUM is not None:
        assert_page_renders(results / "report" / "report.html", tmp_path)
