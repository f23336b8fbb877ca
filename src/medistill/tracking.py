"""MLflow logging that never costs a result, and never logs a run twice.

Results on disk are the source of truth; a run is logged from them after a step succeeds.
Every run is first written as a small JSON record under ``results/tracking/runs/`` (numbers,
parameters, tags, the loss history and artifact paths, never corpus text), then sent to MLflow.
Each run carries a deterministic key (tag ``medistill_key`` = run name + config hash) and a
digest of its content, so logging is idempotent: a run already on the server with the same
digest is left alone, a stale or half-logged one is replaced.

If the tracking store is unreachable the step still succeeds, the job warns once, and

    python -m medistill.tracking relog --results results

later logs exactly the records the server lacks. Every sweep (one config hash) has a parent
run, ``sweep/<config hash>``, created on demand; step runs are nested under it.
"""

from __future__ import annotations

import argparse
import fcntl
import functools
import json
import logging
import math
import os
import subprocess
import sys
import time
import warnings
from collections.abc import Callable, Iterable
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from medistill.core.hashing import config_hash, file_sha256
from medistill.core.io import write_json
from medistill.data.sources import corpus_licence

KEY_TAG = "medistill_key"
DIGEST_TAG = "medistill_digest"
PARENT_TAG = "mlflow.parentRunId"
# Fail fast when the server is down: MLflow's defaults retry for about four minutes.
HTTP_ENV = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "1",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "0",
    "MLFLOW_HTTP_REQUEST_BACKOFF_JITTER": "0.5",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "15",
}
_failed_uris: set[str] = set()  # stores that failed in this process: warn once, retry never


def default_uri(results_dir: str | Path = "results") -> str:
    return f"sqlite:///{Path(results_dir).resolve() / 'mlflow.db'}"


def tracking_uri(config: dict, results_dir: str | Path = "results") -> str:
    """MLFLOW_TRACKING_URI, else the config's uri, else a SQLite store under results/."""
    if os.environ.get("MLFLOW_TRACKING_URI"):
        return os.environ["MLFLOW_TRACKING_URI"]
    if config["tracking"]["uri"]:
        return config["tracking"]["uri"]
    return default_uri(results_dir)


@contextmanager
def _store_lock(results_dir: Path):
    """Parallel jobs share one store; serialise writers (no 'database is locked', one parent)."""
    results_dir.mkdir(parents=True, exist_ok=True)
    with open(results_dir / ".mlflow.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def git_commit() -> str:
    try:
        return subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
            cwd=Path(__file__).resolve().parent,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def _record_file(folder: Path, name: str) -> Path:
    return folder / (name.replace("/", "__") + ".json")


def _licence_tags(config: dict, tags: dict) -> dict:
    out = {}
    teacher = config.get("teachers", {}).get(tags.get("teacher", ""))
    if teacher:
        out["licence.teacher"] = teacher["licence"]
    corpus = config.get("corpora", {}).get(tags.get("corpus", ""))
    if corpus:
        out["licence.corpus"] = corpus_licence(corpus)
    return out


def sweep_record(config: dict) -> dict:
    """The parent run of a sweep: the whole config as parameters, the grid and licences as tags."""
    digest = config_hash(config)
    sweep = config["sweep"]
    tags = {
        "stage": "sweep",
        "config_hash": digest,
        "git_commit": git_commit(),
        "task": sweep["task"],
        "teachers": ",".join(sweep["teachers"]),
        "corpora": ",".join(sweep["corpora"]),
        "sizes": ",".join(sweep["sizes"]),
    }
    for name in sweep["teachers"]:
        tags[f"licence.teacher.{name}"] = config["teachers"][name]["licence"]
    for name in sweep["corpora"]:
        tags[f"licence.corpus.{name}"] = corpus_licence(config["corpora"][name])
    params = {k: str(v)[:500] for k, v in flatten(config).items()}
    record = {
        "name": f"sweep/{digest}",
        "key": f"sweep/{digest}",
        "experiment": config["tracking"]["experiment"],
        "config_uri": config["tracking"]["uri"],
        "params": params,
        "metrics": {},
        "tags": tags,
        "history": [],
        "artifacts": [],
        "dicts": {"config.json": json.loads(json.dumps(config, default=str))},
        "time_ms": int(time.time() * 1000),
    }
    record["digest"] = config_hash({k: record[k] for k in ("params", "tags", "dicts")})
    return record


def run_record(
    config: dict,
    run_name: str,
    *,
    params: dict,
    metrics: dict,
    tags: dict,
    history: list[dict] | None,
    artifacts: Iterable[Path],
    results_dir: Path,
) -> dict:
    """Everything needed to log (or re-log) one step, as plain JSON."""
    digest = config_hash(config)
    tags = {k: str(v) for k, v in tags.items()}
    tags.setdefault("task", config["sweep"]["task"])
    if tags.get("stage") in ("prepare", "finetune"):  # teacher steps: no corpus, no size
        tags.setdefault("corpus", "teacher")
        tags.setdefault("size", "teacher")
    tags |= _licence_tags(config, tags)
    tags |= {"config_hash": digest, "git_commit": git_commit()}
    numeric = {
        k: float(v)
        for k, v in flatten(metrics).items()
        if isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)
    }
    base = results_dir.resolve().parent
    paths = []
    for artifact in artifacts:
        path = Path(artifact).resolve()
        paths.append(str(path.relative_to(base)) if path.is_relative_to(base) else str(path))
    history = [  # training loss points, and dev F1 points where the run selects on dev
        {"step": int(p["step"])} | {k: float(p[k]) for k in ("loss", "lr", "dev_f1") if k in p}
        for p in history or []
    ]
    record = {
        "name": run_name,
        "key": f"{run_name}@{digest}",
        "parent_key": f"sweep/{digest}",
        "experiment": config["tracking"]["experiment"],
        "config_uri": config["tracking"]["uri"],
        "params": {k: str(v)[:500] for k, v in flatten(params).items()},
        "metrics": numeric,
        "tags": tags,
        "history": history,
        "artifacts": paths,
        "dicts": {"training_history.json": history} if history else {},
        "time_ms": int(time.time() * 1000),
    }
    record["digest"] = _record_digest(record, base)
    return record


def _record_digest(record: dict, base: Path) -> str:
    content = {k: v for k, v in record.items() if k not in ("time_ms", "config_uri", "digest")}
    content["artifact_sha"] = [_file_digest(base / p) for p in record["artifacts"]]
    return config_hash(content)


def _file_digest(path: Path) -> str | None:
    try:
        return file_sha256(path)[:16]
    except OSError:
        return None


# --------------------------------------------------------------------------- MLflow side


@contextmanager
def _quiet_http():
    """Fail fast, and keep urllib3's retry chatter out of the job log (we warn once ourselves)."""
    for name, value in HTTP_ENV.items():
        os.environ.setdefault(name, value)
    noisy = [logging.getLogger(n) for n in ("urllib3", "urllib3.connectionpool", "mlflow")]
    levels = [logger.level for logger in noisy]
    for logger in noisy:
        logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        for logger, level in zip(noisy, levels, strict=True):
            logger.setLevel(level)


@contextmanager
def _experiment(uri: str, name: str, results_dir: Path):
    """A client on the store, quiet and locked, and the id of experiment `name` in it."""
    with _quiet_http(), _store_lock(results_dir):
        client = _client(uri)
        yield client, _experiment_id(client, name, uri, results_dir)


def _client(uri: str):
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=uri)


def _experiment_id(client, name: str, uri: str, results_dir: Path) -> str:
    experiment = client.get_experiment_by_name(name)
    if experiment is not None:
        if experiment.lifecycle_stage == "deleted":
            client.restore_experiment(experiment.experiment_id)
        return experiment.experiment_id
    location = None
    if uri.startswith("sqlite:") or uri.startswith("file:") or "://" not in uri:
        location = (results_dir.resolve() / "mlartifacts").as_uri()  # not ./mlruns in the cwd
    try:
        return client.create_experiment(name, artifact_location=location)
    except Exception:  # created meanwhile by another machine
        experiment = client.get_experiment_by_name(name)
        if experiment is None:
            raise
        return experiment.experiment_id


def _runs_by_key(client, experiment_id: str, key: str | None = None) -> dict[str, list]:
    """Active runs of the experiment that carry a medistill key, grouped by key."""
    found: dict[str, list] = {}
    token = None
    query = f"tags.{KEY_TAG} = '{key}'" if key else ""
    while True:
        page = client.search_runs(
            [experiment_id], filter_string=query, max_results=1000, page_token=token
        )
        for run in page:
            run_key = run.data.tags.get(KEY_TAG)
            if run_key:
                found.setdefault(run_key, []).append(run)
        token = page.token
        if not token:
            return found


def _is_current(run, record: dict) -> bool:
    """A finished run holding exactly this record (not a half-logged or stale one)."""
    return run.info.status == "FINISHED" and run.data.tags.get(DIGEST_TAG) == record["digest"]


def _send(client, experiment_id: str, record: dict, base: Path, parent_id: str | None) -> str:
    """Create one run from a record: tags, params, metrics with steps, artifacts."""
    from mlflow.entities import Metric, Param

    tags = record["tags"] | {KEY_TAG: record["key"], DIGEST_TAG: record["digest"]}
    if parent_id:
        tags[PARENT_TAG] = parent_id
    run = client.create_run(
        experiment_id, start_time=record["time_ms"], tags=tags, run_name=record["name"]
    )
    run_id = run.info.run_id
    params = [Param(k, v) for k, v in record["params"].items()]
    for start in range(0, len(params), 100):
        client.log_batch(run_id, params=params[start : start + 100], synchronous=True)
    stamp = record["time_ms"]
    metrics = [Metric(k, v, stamp, 0) for k, v in record["metrics"].items()]
    series = {"loss": "train_loss", "lr": "learning_rate", "dev_f1": "dev_f1"}
    metrics += [
        Metric(name, p[key], stamp, p["step"])
        for p in record["history"]
        for key, name in series.items()
        if key in p
    ]
    for start in range(0, len(metrics), 1000):
        client.log_batch(run_id, metrics=metrics[start : start + 1000], synchronous=True)
    for name, obj in record["dicts"].items():
        client.log_dict(run_id, obj, name)
    for artifact in record["artifacts"]:
        path = Path(artifact) if Path(artifact).is_absolute() else base / artifact
        if path.is_file():
            client.log_artifact(run_id, str(path))
    client.set_terminated(run_id, "FINISHED", end_time=int(time.time() * 1000))
    return run_id


def _ensure(client, experiment_id: str, record: dict, existing: dict, base: Path, parent=None):
    """Log `record` unless a finished run with its key and digest exists; return (id, logged)."""
    runs = existing.get(record["key"], [])
    current = next((run for run in runs if _is_current(run, record)), None)
    for run in runs:  # half-logged runs, runs from before a rerun of the step, duplicates
        if run is not current:
            client.delete_run(run.info.run_id)
    if current is not None:
        existing[record["key"]] = [current]
        return current.info.run_id, False
    run_id = _send(client, experiment_id, record, base, parent)
    existing[record["key"]] = [client.get_run(run_id)]
    return run_id, True


def _parent_id(client, experiment_id, parent: dict | None, base: Path, existing: dict):
    if parent is None:
        return None
    runs = existing.get(parent["key"]) or []
    finished = [r for r in runs if r.info.status == "FINISHED"]
    if finished:  # a sweep's parent stays the same run, whatever the commit that reused it
        return finished[0].info.run_id
    return _ensure(client, experiment_id, parent, existing, base)[0]


def _write_records(results_dir: Path, record: dict, parent: dict) -> None:
    folder = results_dir / "tracking"
    write_json(record, _record_file(folder / "runs", record["name"]))
    sweep_file = _record_file(folder / "sweeps", parent["key"])
    if not sweep_file.exists():
        write_json(parent, sweep_file)


def _warn(uri: str, run_name: str, error: Exception, results_dir: Path) -> None:
    if uri in _failed_uris:
        return
    _failed_uris.add(uri)
    text = str(error)
    message = (
        "connection refused"
        if "Connection refused" in text or "NewConnectionError" in text
        else (text.splitlines()[0][:300] if text else type(error).__name__)
    )
    warnings.warn(
        f"MLflow tracking at {uri} failed while logging '{run_name}' ({message}); the results "
        f"are on disk and the run is kept in {results_dir / 'tracking'}; log it later with "
        f"`python -m medistill.tracking relog --results {results_dir}`",
        stacklevel=3,
    )


def log_run(
    config: dict,
    run_name: str,
    *,
    params: dict,
    metrics: dict,
    tags: dict,
    history: list[dict] | None = None,
    artifacts: Iterable[Path] = (),
    results_dir: str | Path = "results",
) -> str | None:
    """Record a finished step and log it as an MLflow run nested in its sweep's parent run.

    Returns the run id, or None (and one warning per job) when the store cannot be reached.
    """
    results_dir = Path(results_dir)
    uri = tracking_uri(config, results_dir)
    try:
        record = run_record(
            config,
            run_name,
            params=params,
            metrics=metrics,
            tags=tags,
            history=history,
            artifacts=artifacts,
            results_dir=results_dir,
        )
        parent = sweep_record(config)
        _write_records(results_dir, record, parent)
    except Exception as error:  # tracking must never fail a step whose results are on disk
        warnings.warn(f"cannot record the MLflow run '{run_name}': {error}", stacklevel=2)
        return None
    if uri in _failed_uris:
        return None
    try:
        with _experiment(uri, record["experiment"], results_dir) as (client, experiment_id):
            existing = _runs_by_key(client, experiment_id, record["key"])
            existing |= _runs_by_key(client, experiment_id, parent["key"])
            base = results_dir.resolve().parent
            parent_id = _parent_id(client, experiment_id, parent, base, existing)
            return _ensure(client, experiment_id, record, existing, base, parent_id)[0]
    except Exception as error:
        _warn(uri, run_name, error, results_dir)
        return None


def run_logger(config: dict, results_dir: str | Path = "results") -> Callable[..., str | None]:
    """`log_run` bound to the whole sweep config (store, experiment, sweep hash, licences):
    what a job hands the library, which itself sees only its rule's slice of the config."""
    return functools.partial(log_run, config, results_dir=results_dir)


def attach_artifacts(
    config: dict, run_name: str, artifacts: Iterable[Path], results_dir: str | Path = "results"
) -> str | None:
    """Add files written after a step's run was logged (a model card) to that run.

    The run's record gains the files; the run itself gets them uploaded, or is re-logged whole
    by `relog` when the store is unreachable now.
    """
    results_dir = Path(results_dir)
    path = _record_file(results_dir / "tracking" / "runs", run_name)
    uri = tracking_uri(config, results_dir)
    try:
        record = json.loads(path.read_text())
        base = results_dir.resolve().parent
        new = []
        for artifact in artifacts:
            full = Path(artifact).resolve()
            relative = str(full.relative_to(base)) if full.is_relative_to(base) else str(full)
            if relative not in record["artifacts"]:
                record["artifacts"].append(relative)
            new.append(full)
        old_digest, record["digest"] = record["digest"], _record_digest(record, base)
        write_json(record, path)
    except Exception as error:
        warnings.warn(f"cannot record artifacts of '{run_name}': {error}", stacklevel=2)
        return None
    if uri in _failed_uris:
        return None
    try:
        with _experiment(uri, record["experiment"], results_dir) as (client, experiment_id):
            runs = _runs_by_key(client, experiment_id, record["key"]).get(record["key"], [])
            for run in runs:
                if run.info.status == "FINISHED" and run.data.tags.get(DIGEST_TAG) == old_digest:
                    for full in new:
                        client.log_artifact(run.info.run_id, str(full))
                    client.set_tag(run.info.run_id, DIGEST_TAG, record["digest"])
                    return run.info.run_id
            existing = _runs_by_key(client, experiment_id, record["key"])
            parent = _load_sweep(results_dir, record.get("parent_key"))
            existing |= _runs_by_key(client, experiment_id, parent["key"]) if parent else {}
            parent_id = _parent_id(client, experiment_id, parent, base, existing)
            return _ensure(client, experiment_id, record, existing, base, parent_id)[0]
    except Exception as error:
        _warn(uri, run_name, error, results_dir)
        return None


def _load_sweep(results_dir: Path, key: str | None) -> dict | None:
    if not key:
        return None
    try:
        return json.loads(_record_file(results_dir / "tracking" / "sweeps", key).read_text())
    except (OSError, json.JSONDecodeError):
        return None


def load_records(results_dir: str | Path) -> tuple[list[dict], dict[str, dict]]:
    """The run records and sweep records kept under results/tracking/."""
    folder = Path(results_dir) / "tracking"
    runs = [json.loads(p.read_text()) for p in sorted((folder / "runs").glob("*.json"))]
    sweeps = {}
    for path in sorted((folder / "sweeps").glob("*.json")):
        record = json.loads(path.read_text())
        sweeps[record["key"]] = record
    return runs, sweeps


def relog(results_dir: str | Path = "results", uri: str | None = None) -> dict[str, int]:
    """Log every recorded run the tracking store lacks; return counts of logged and present runs.

    The store is the one given, else MLFLOW_TRACKING_URI, else the config's uri recorded with
    the runs, else the SQLite store under `results_dir`. Safe to run any number of times.
    """
    results_dir = Path(results_dir)
    records, sweeps = load_records(results_dir)
    counts = {"logged": 0, "present": 0}
    if not records:
        return counts
    recorded_uri = next((r["config_uri"] for r in records if r.get("config_uri")), None)
    uri = uri or os.environ.get("MLFLOW_TRACKING_URI") or recorded_uri or default_uri(results_dir)
    base = results_dir.resolve().parent
    with _quiet_http(), _store_lock(results_dir):
        client = _client(uri)
        by_experiment: dict[str, list[dict]] = {}
        for record in records:
            by_experiment.setdefault(record["experiment"], []).append(record)
        for name, group in by_experiment.items():
            experiment_id = _experiment_id(client, name, uri, results_dir)
            existing = _runs_by_key(client, experiment_id)
            for record in group:
                parent = sweeps.get(record.get("parent_key"))
                parent_id = _parent_id(client, experiment_id, parent, base, existing)
                _, logged = _ensure(client, experiment_id, record, existing, base, parent_id)
                counts["logged" if logged else "present"] += 1
    return counts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m medistill.tracking",
        description="Log to MLflow the runs recorded under results/tracking/ that it lacks.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    command = commands.add_parser("relog", help="log missing runs; never duplicates a run")
    command.add_argument("--results", default="results", help="the sweep's results folder")
    command.add_argument("--uri", default=None, help="tracking URI (default: see README)")
    args = parser.parse_args(argv)
    try:
        counts = relog(args.results, args.uri)
    except Exception as error:
        print(f"relog failed: {error}", file=sys.stderr)
        return 1
    print(f"relog: {counts['logged']} run(s) logged, {counts['present']} already present")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())


def flatten(config: dict, prefix: str = "") -> dict[str, Any]:
    """`{"a": {"b": 1}}` -> `{"a.b": 1}`, for MLflow parameters and table columns."""
    flat: dict[str, Any] = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flatten(value, f"{name}."))
        else:
            flat[name] = value
    return flat
