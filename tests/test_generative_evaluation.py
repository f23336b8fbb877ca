"""A generative tagger's evaluation: unaligned output lines are false positives in the row's
precision and F1 and in the bootstrap's sentence counts, `f1_unseen` masks seen mentions as
the encoders' does, and a sentence met again in another test set is not generated again."""

from __future__ import annotations

import json

import pytest

from medistill.core.io import read_json, write_jsonl
from medistill.generative import tagging as generative_tagging
from medistill.generative.tagging import Tagger, evaluate_generative_tagger

CLEAN = [
    {"words": ["Toux", "et", "fièvre", "."], "tags": ["B-SOSY", "O", "B-SOSY", "O"]},
    {"words": ["Sous", "aspirine", "."], "tags": ["O", "B-CHEM", "O"]},
]
# the same sentences, `Toux` seen in train: masked out of gold and predictions
UNSEEN = [
    CLEAN[0] | {"ignore": [True, False, False, False]},
    CLEAN[1] | {"ignore": [False, False, False]},
]
ANSWERS = {
    "Toux et fièvre .": "SOSY: Toux\nSOSY: fièvre\nSOSY: douleur",  # one line not in the sentence
    "Sous aspirine .": "CHEM: aspirine",
}


def test_unaligned_lines_count_unseen_mentions_are_masked_and_nothing_is_generated_twice(
    default_config, tmp_path, monkeypatch
):
    generated = []

    def outputs(sentences, device):
        assert sentences, "asked for an empty batch (a fast tokenizer cannot encode one)"
        generated.extend(" ".join(s["words"]) for s in sentences)
        return [ANSWERS[" ".join(s["words"])] for s in sentences]

    scripted = Tagger(
        outputs,
        entity_types=["SOSY", "CHEM"],
        licence="Apache-2.0",
        size="prompted-3shot",
        device="cpu",
        engine="llama-cpp",
        params_total=10,
        params_non_embedding=6,
        disk_mb=1.0,
        weights_sha="0",
    )
    monkeypatch.setattr(generative_tagging, "load_tagger", lambda *args, **kwargs: scripted)
    write_jsonl(CLEAN, tmp_path / "test.jsonl")
    write_jsonl(UNSEEN, tmp_path / "test_unseen.jsonl")
    (tmp_path / "labels.json").write_text(json.dumps(["O", "B-SOSY", "I-SOSY", "B-CHEM"]))
    config = default_config | {
        "generative": {"taggers": {"llm": {"kind": "prompted"}}, "generation": {}},
        "evaluate": {"latency_runs": 3, "latency_threads": 1},
        "energy": {"enabled": False},
    }
    config["generative"]["generation"]["transformers_latency_runs"] = 0
    result = evaluate_generative_tagger(
        config,
        "llm",
        None,
        tmp_path,
        {"clean": tmp_path / "test.jsonl", "unseen": tmp_path / "test_unseen.jsonl"},
        tmp_path / "eval.json",
        reference_teacher="minilm-l6",
        task="t",
        log_run=lambda *args, **kwargs: None,
    )
    # 3 gold mentions found, 1 line names none of the sentence's: precision 3/4, recall 1
    assert result["recall"] == 1.0 and result["precision"] == pytest.approx(3 / 4)
    assert result["f1"] == pytest.approx(2 * 3 / (4 + 3)) and result["f1_aligned_only"] == 1.0
    assert result["parse"]["not_found"] == result["unaligned_lines"] == 1
    assert read_json(tmp_path / "eval.counts.json") == [[2, 3, 2], [1, 1, 1]]
    # unseen: `Toux` is out of gold and predictions; `fièvre`, `aspirine` and the unaligned
    # line remain: precision 2/3, recall 1
    assert result["f1_unseen"] == pytest.approx(2 * 2 / (3 + 2))
    # both test sets' sentences answered once, then the latency runs: a warm-up and each
    # clean sentence (up to latency_runs)
    assert generated[:2] == ["Toux et fièvre .", "Sous aspirine ."] and len(generated) == 2 + 3
    assert result["engine"] == "llama-cpp" and result["params_total"] == 10
