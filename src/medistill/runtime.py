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
    if not config.get("allow_network", False):
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
    torch.manual_seed(config.get("seed", 0))
    log = logging.getLogger("medistill")
    # Which slot the job got: SLURM sets CUDA_VISIBLE_DEVICES to the GPUs it allocated.
    log.info(
        "job: %d threads, SLURM job %s, CUDA_VISIBLE_DEVICES=%s",
        max(1, threads),
        os.environ.get("SLURM_JOB_ID", "-"),
        os.environ.get("CUDA_VISIBLE_DEVICES", "unset"),
    )
    return log


_claimed_gpu: tuple[int, object] | None = None


def claim_gpu() -> int:
    """Make this process use a GPU that no other medistill job on the machine holds; its index.

    Under SLURM (or with CUDA_VISIBLE_DEVICES set) the job only sees its own GPUs: the first is
    used. On a workstation with several GPUs (profiles/local with `resources: gpu=N`), each
    job holds an exclusive lock file on one GPU for its lifetime, so jobs never share a GPU.
    """
    global _claimed_gpu
    import fcntl
    import tempfile

    import torch

    if _claimed_gpu is not None:
        return _claimed_gpu[0]
    count = torch.cuda.device_count()
    if count <= 1 or os.environ.get("CUDA_VISIBLE_DEVICES"):
        return 0
    for index in range(count):
        handle = open(Path(tempfile.gettempdir()) / f"medistill-gpu-{index}.lock", "w")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.close()
            continue
        _claimed_gpu = (index, handle)  # the lock lasts as long as the process
        torch.cuda.set_device(index)
        logging.getLogger("medistill").info("using GPU %d of %d", index, count)
        return index
    logging.getLogger("medistill").warning("all %d GPUs are held by other jobs; using GPU 0", count)
    return 0
