"""Stable fingerprints: of a (sub-)config, to tag runs and guard checkpoints; of a file."""

from __future__ import annotations

import hashlib
import json
import os


def config_hash(config: dict) -> str:
    """A short stable fingerprint of a (sub-)config, to tag runs and guard checkpoints."""
    canonical = json.dumps(config, sort_keys=True, default=str).encode()
    return hashlib.sha256(canonical).hexdigest()[:12]


def file_sha256(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
