"""The GLiNER tagger kind: a tiny GLiNER built here on the test BERT (random weights), loaded
from its folder like a hub snapshot, its spans parsed and scored like any tagger's output."""

import json
from pathlib import Path

import pytest

from medistill.config import validate_config
from medistill.core.errors import ConfigError
from medistill.core.io import write_jsonl
from medistill.generative.text import ParseCounts

SENTENCES = [
    {
        "words": ["Toux", "sèche", "depuis", "l'", "été", "."],
        "tags": ["B-SOSY", "I-SOSY"] + ["O"] * 4,
    },
    {"words": ["Pas", "de", "fièvre", "."], "tags": ["O", "O", "B-SOSY", "O"]},
    {
        "words": ["Insuline", "pour", "diabète", "de", "type", "1", "."],
        "tags": ["B-CHEM", "O"] + ["B-DISO", "I-DISO", "I-DISO", "I-DISO", "O"],
    },
]


@pytest.fixture(scope="module")
def tiny_gliner(tmp_path_factory, tiny_bert) -> Path:
    """A span GLiNER on the 4-layer test BERT, saved the way the hub's GLiNER models are."""
    import torch
    from gliner import GLiNER, GLiNERConfig

    torch.manual_seed(0)
    config = GLiNERConfig(model_name=str(tiny_bert), hidden_size=32, max_width=4)
    folder = tmp_path_factory.mktemp("tiny-gliner")
    GLiNER.from_config(config).save_pretrained(folder)
    return folder


def _config(default_config, folder, threshold=0.05):
    tagger = {
        "kind": "gliner",
        "source": f"local:{folder}",
        "licence": "Apache-2.0",
        "threshold": threshold,
        "descriptions": {"SOSY": "symptôme"},
    }
    config = default_config | {"generative": {"taggers": {"gl": tagger}, "sweep": ["gl"]}}
    return validate_config(config, where="c.yaml")


def _task(tmp_path) -> Path:
    task = tmp_path / "task"
    task.mkdir()
    labels = ["O"] + [f"{p}-{t}" for t in ("DISO", "SOSY", "CHEM") for p in "BI"]
    (task / "labels.json").write_text(json.dumps(labels))
    write_jsonl(SENTENCES, task / "train.jsonl")
    write_jsonl(SENTENCES, task / "test.jsonl")
    return task


def test_gliner_spans_become_lines_on_the_sentence_words_and_a_report_row(
    default_config, tiny_gliner, tmp_path
):
    from medistill.generative.tagging import evaluate_generative_tagger, load_tagger

    config = _config(default_config, tiny_gliner)
    assert config["generative"]["sweep"] == ["gl"]
    task = _task(tmp_path)
    tagger = load_tagger(config, "gl", None, task)
    assert tagger.size == "zero-shot" and tagger.licence == "Apache-2.0"
    outputs = tagger.outputs(SENTENCES, "cpu")
    lines = [line for output in outputs for line in output.splitlines() if line != "aucune"]
    assert lines, "a threshold of 0.05 keeps some spans of a random GLiNER"
    assert {line.split(":")[0] for line in lines} <= {"DISO", "SOSY", "CHEM"}
    tags, per_sentence = tagger.tags(SENTENCES)
    counts = ParseCounts.summed(per_sentence)
    assert [len(t) for t in tags] == [len(s["words"]) for s in SENTENCES]
    # GLiNER's spans are cut on the sentence's own words (accents and apostrophes included):
    # each one aligns, or overlaps a mention placed by an earlier occurrence of its text
    assert counts.lines == len(lines) == counts.aligned + counts.overlapping
    assert counts.malformed == counts.unknown_type == counts.not_found == 0

    logged = []
    result = evaluate_generative_tagger(
        config,
        "gl",
        None,
        task,
        {"clean": task / "test.jsonl"},
        tmp_path / "eval.json",
        reference_teacher="minilm-l6",
        task="t",
        log_run=lambda *args, **kwargs: logged.append(args),
    )
    assert result["role"] == "generative" and result["size"] == "zero-shot"
    assert result["parse"]["lines"] == len(lines)
    assert 0 < result["params_non_embedding"] < result["params_total"]
    assert result["latency_ms_b1"] > 0 and result["disk_mb"] > 0 and logged


def test_a_high_threshold_keeps_no_span(default_config, tiny_gliner, tmp_path):
    from medistill.generative.tagging import load_tagger

    tagger = load_tagger(_config(default_config, tiny_gliner, 0.99), "gl", None, _task(tmp_path))
    assert tagger.outputs(SENTENCES, "cpu") == ["aucune"] * len(SENTENCES)


def test_a_gliner_whose_backbone_brings_its_own_code_needs_the_opt_in(tiny_gliner, tmp_path):
    import shutil

    from medistill.generative.outputs import load_gliner

    folder = tmp_path / "remote"
    shutil.copytree(tiny_gliner, folder)
    gliner_config = json.loads((folder / "gliner_config.json").read_text())
    gliner_config["encoder_config"]["auto_map"] = {"AutoModel": "modeling_x.XModel"}
    (folder / "gliner_config.json").write_text(json.dumps(gliner_config))
    with pytest.raises(ValueError, match="trust_remote_code: true"):
        load_gliner(folder, remote=False)


def test_gliner_entries_are_checked_before_any_job(default_config, tmp_path, capsys):
    def validate(tagger):
        config = default_config | {"generative": {"taggers": {"gl": tagger}, "sweep": ["gl"]}}
        return validate_config(config, where="c.yaml")

    with pytest.raises(ConfigError, match="generative"):  # a GLiNER names its licence
        validate({"kind": "gliner", "source": "hub:urchade/gliner_multi-v2.1"})
    with pytest.raises(ConfigError, match="generative"):  # shots are for prompted models
        validate({"kind": "gliner", "source": "hub:a/b", "licence": "Apache-2.0", "shots": 2})
    # a transformers model folder is not a GLiNER
    (tmp_path / "config.json").write_text("{}")
    local = {"kind": "gliner", "source": f"local:{tmp_path}", "licence": "Apache-2.0"}
    with pytest.raises(ConfigError, match="no gliner_config.json"):
        validate(local)
    # offline, a hub GLiNER that is not cached is left out of the sweep with a message
    hub = {"kind": "gliner", "source": "hub:urchade/gliner_multi-v2.1", "licence": "Apache-2.0"}
    assert validate(hub)["generative"]["sweep"] == []
    assert "generative.taggers.gl skipped" in capsys.readouterr().err


def test_descriptions_must_name_distinct_types_of_the_task(default_config, tiny_gliner, tmp_path):
    from medistill.generative.tagging import load_tagger

    task = _task(tmp_path)
    config = _config(default_config, tiny_gliner)
    spec = config["generative"]["taggers"]["gl"]
    spec["descriptions"] = {"SOSYY": "symptôme"}
    with pytest.raises(ValueError, match=r"descriptions\.SOSYY: not an entity type of .*labels"):
        load_tagger(config, "gl", None, task)
    spec["descriptions"] = {"SOSY": "maladie", "DISO": "maladie"}
    with pytest.raises(ValueError, match="describes two types"):
        load_tagger(config, "gl", None, task)
