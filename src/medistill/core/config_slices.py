"""Config slices: the part of a validated config a job's outputs depend on, in the config's own
shape. Each rule passes its slice as `params.settings`; Snakemake reruns a job whose params
changed, so editing a value reruns exactly the jobs whose slice holds it, and a key the library
reads but the rule does not declare fails loudly (KeyError) instead of going unseen. Execution
settings (tracking, resources, allow_network) are in no slice: they change where and how a job
runs, not what it computes."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

# Keys that change what any model-running job computes.
MODEL_KEYS = ("seed", "trust_remote_code", "device", "max_length")
# Keys of every training run: seeds, dev scoring (batch size), energy measurement.
TRAINING_KEYS = (*MODEL_KEYS, "seeds", "evaluate.batch_size", "energy")
# Recipe keys of the teacher's signal, which a student trained on gold tags alone never reads.
TEACHER_SIGNAL_KEYS = (
    "temperature",
    "kl_weight",
    "ce_weight",
    "targets",
    "gold_ratio",
    "intermediate",
)
# Top-level keys that say how and where jobs run, not what they compute.
EXECUTION_KEYS = ("tracking", "resources", "allow_network")


def config_slice(config: Mapping, *keys: str) -> dict:
    """The config keys `keys` ("a" or "a.b"), in the config's nesting; absent optional keys
    (e.g. `energy`) stay absent."""
    part: dict = {}
    for key in keys:
        *parents, leaf = key.split(".")
        source, target = config, part
        for name in parents:
            source = source[name]
            target = target.setdefault(name, {})
        if leaf in source:
            target[leaf] = source[leaf]
    return part


def only(spec: Mapping, keys: Iterable[str]) -> dict:
    """The entries of `spec` named in `keys`, in the order of `keys`."""
    return {key: spec[key] for key in keys if key in spec}


def names_pattern(names: Iterable[str]) -> str:
    """A wildcard pattern matching exactly `names` ("(?!)" matches nothing when there are
    none), e.g. to keep the rule that trains a size apart from the one that compresses it."""
    return "|".join(map(re.escape, names)) or "(?!)"
