"""MLflow logging that never costs a result.

Results on disk are the source of truth; a run is logged from them after a step succeeds. If
the tracking store is unreachable the step still succeeds and a warning says so. Only
parameters, numbers and tags are logged: never corpus text.
"""

from __future__ import annotations

import fcntl
import os
import subprocess
import warnings
from contextlib import contextmanager
from pathlib import Path

from medistill.config import config_hash, flatten


def tracking_uri(config: dict, results_dir: str | Path = "results") -> str:
    """MLFLOW_TRACKING_URI, else the config's uri, else a SQLite store under results/."""
    if os.environ.get("MLFLOW_TRACKING_URI"):
        return os.environ["MLFLOW_TRACKING_URI"]
    if config["tracking"]["uri"]:
        return config["tracking"]["uri"]
    return f"sqlite:///{Path(results_dir).resolve() / 'mlflow.db'}"


@contextmanager
def _store_lock(results_dir: Path):
    """Parallel jobs share one SQLite file; serialise writers so none sees 'database is locked'."""
    results_dir.mkdir(parents=True, exist_ok=True)
    with open(results_dir / ".mlflow.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def git_commit() -> str:
    try:
        return subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def log_run(
    config: dict,
    run_name: str,
    *,
    params: dict,
    metrics: dict,
    tags: dict,
    history: list[dict] | None = None,
    artifacts: list[Path] = (),
    results_dir: str | Path = "results",
) -> str | None:
    """Log a finished step as an MLflow run; return its id, or None (and a warning) on failure."""
    numeric = {k: float(v) for k, v in flatten(metrics).items() if isinstance(v, int | float)}
    try:
        import mlflow

        with _store_lock(Path(results_dir)):
            mlflow.set_tracking_uri(tracking_uri(config, results_dir))
            mlflow.set_experiment(config["tracking"]["experiment"])
            with mlflow.start_run(run_name=run_name) as run:
                mlflow.set_tags(
                    tags | {"config_hash": config_hash(config), "git_commit": git_commit()}
                )
                mlflow.log_params({k: str(v)[:500] for k, v in flatten(params).items()})
                mlflow.log_metrics(numeric)
                for point in history or []:
                    mlflow.log_metric("train_loss", point["loss"], step=point["step"])
                for artifact in artifacts:
                    mlflow.log_artifact(str(artifact))
                return run.info.run_id
    except Exception as error:  # tracking must never fail a step whose results are on disk
        warnings.warn(
            f"MLflow logging of '{run_name}' failed ({error}); results are on disk", stacklevel=2
        )
        return None
