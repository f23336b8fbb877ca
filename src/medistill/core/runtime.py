"""What every workflow job sets up first: its log, its CPU threads, and no surprise network."""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path


def prepare_job(log_path: str | Path | None, threads: int, config: dict) -> logging.Logger:
    """Log to the job's log file and stderr; use the job's threads; stay offline unless allowed.

    Hugging Face libraries try the network by default; HF_HUB_OFFLINE makes a missing file
    fail at once instead, unless the config sets allow_network.
    """
    if not config["allow_network"]:
        os.environ["HF_HUB_OFFLINE"] = "1"
        os.environ["HF_DATASETS_OFFLINE"] = "1"
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    if log_path:
        Path(log_path).parent.mkdir(parents=True, exist_ok=True)
        handlers.append(logging.FileHandler(log_path, mode="w", encoding="utf-8"))
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(name)s: %(message)s",
        handlers=handlers,
        force=True,
    )
    logging.captureWarnings(True)
    import torch

    torch.set_num_threads(max(1, threads))
    # Seed before any model is built: a classification head freshly added to a pretrained
    # encoder is random, and the same config must give the same teacher on any executor.
    torch.manual_seed(config["seed"])
    log = logging.getLogger("medistill")
    # Which slot the job got: SLURM sets CUDA_VISIBLE_DEVICES to the GPUs it allocated.
    log.info(
        "job: %d threads, SLURM job %s, CUDA_VISIBLE_DEVICES=%s",
        max(1, threads),
        os.environ.get("SLURM_JOB_ID", "-"),
        os.environ.get("CUDA_VISIBLE_DEVICES", "unset"),
    )
    return log
