"""Which device a job computes on: the configured preference, and a GPU of its own."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import torch


def choose_device(preference: str = "auto") -> str:
    """`device` of the config: `auto` picks CUDA, then Apple MPS, then the CPU."""
    if preference != "auto":
        return preference
    if torch.cuda.is_available():
        claim_gpu()  # a GPU of its own when jobs run side by side on a multi-GPU machine
        return "cuda"
    if torch.backends.mps.is_available():
        return "mps"
    return "cpu"


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
