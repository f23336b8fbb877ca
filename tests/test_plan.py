"""The job graph's logic (medistill.plan, medistill.seq2seq.plan) on the shipped configs, without
Snakemake: which files a job reads and which config keys its outputs depend on."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from medistill.core.config_slices import TEACHER_SIGNAL_KEYS, config_slice, names_pattern
from medistill.core.errors import ConfigError


def student(teacher="minilm-l6", corpus="synth", size="L3", task="ner-synth"):
    return SimpleNamespace(teacher=teacher, corpus=corpus, size=size, task=task)


def test_config_slice_keeps_the_nesting_and_leaves_absent_keys_out():
    config = {"a": 1, "b": {"c": 2, "d": 3}}
    assert config_slice(config, "a", "b.c", "e", "b.f") == {"a": 1, "b": {"c": 2}}


def test_names_pattern_matches_names_only_and_nothing_when_empty():
    import re

    assert re.fullmatch(names_pattern(["L3", "L3-int8"]), "L3-int8")
    assert not re.fullmatch(names_pattern(["L3"]), "L3-int8")
    assert not re.fullmatch(names_pattern([]), "")


def test_the_default_grid_has_each_student_and_its_gold_twin(plan_of):
    plan = plan_of()
    assert plan.student_grid() == [("minilm-l6", "synth"), ("minilm-l6", "gold")]
    assert plan.runtimes == ["int8"]
    files = plan.evaluation_files()
    assert "results/eval/minilm-l6/teacher-int8/ner-synth.json" in files
    assert "results/eval/minilm-l6/gold/L3-int8/ner-synth.json" in files
    assert len(files) == len(set(files))


def test_a_distilled_student_reads_the_teacher_signal_and_its_twin_does_not(plan_of):
    plan = plan_of()
    distilled = plan.distill_inputs(student())
    assert distilled["cache"] == ["results/cache/minilm-l6/synth/task/ner-synth/manifest.json"]
    assert distilled["train_cache"] == [
        "results/cache/minilm-l6/task-train/ner-synth/manifest.json"
    ]
    twin = plan.distill_inputs(student(corpus="gold"))
    assert not {"cache", "train_cache", "docs"} & set(twin)
    assert plan.baseline_counts(student()) == {
        "baseline_counts": "results/eval/minilm-l6/gold/L3/ner-synth.counts.json"
    }
    assert plan.baseline_counts(student(corpus="gold")) == {}


def test_the_twin_learns_the_corpus_gold_tags_only_when_the_config_lets_them_in(plan_of):
    plan = plan_of(distill={"corpus_gold": True})
    assert plan.distill_inputs(student(corpus="gold"))["docs"] == (
        "results/corpus/synth/augmented.jsonl"
    )


def test_the_twin_slice_holds_no_teacher_signal_key(plan_of):
    plan = plan_of()
    twin = plan.distill_settings(student(corpus="gold"))["distill"]
    distilled = plan.distill_settings(student())["distill"]
    assert set(TEACHER_SIGNAL_KEYS) <= set(distilled)
    assert not set(TEACHER_SIGNAL_KEYS) & set(twin)
    hotter = plan_of(distill={"temperature": 4.0})
    assert hotter.distill_settings(student()) != plan.distill_settings(student())
    assert hotter.distill_settings(student(corpus="gold")) == plan.distill_settings(
        student(corpus="gold")
    )


def test_a_mix_reads_each_member_cache_and_starts_from_its_init(plan_of):
    plan = plan_of(
        teachers={"pair": {"mix": {"minilm-l6": 0.5, "e5-small": 0.5}, "init": "minilm-l6"}},
        sweep={"teachers": ["pair"]},
    )
    inputs = plan.distill_inputs(student(teacher="pair"))
    assert inputs["cache"] == [
        "results/cache/minilm-l6/synth/task/ner-synth/manifest.json",
        "results/cache/e5-small/synth/task/ner-synth/manifest.json",
    ]
    assert (
        plan.teacher_model(student(teacher="pair")) == "results/teachers/minilm-l6/ner-synth/model"
    )
    assert ("minilm-l6", "gold") in plan.student_grid()
    assert ("pair", "gold") not in plan.student_grid()


def test_compressed_sizes_come_from_their_trained_size(plan_of):
    plan = plan_of()
    assert plan.compressed_from(student(size="L3-int8")) == {
        "model": "results/students/minilm-l6/ner-synth/synth/L3/model",
        "seeds": "results/students/minilm-l6/ner-synth/synth/L3/seeds",
    }
    assert plan.size_runtime("L3-int8") == "int8" and plan.size_runtime("L3") == "torch"


def test_an_edit_of_execution_settings_is_in_no_report_slice(plan_of):
    plan = plan_of()
    assert not {"tracking", "resources", "allow_network"} & set(plan.report_settings())


def test_gpu_resources_are_requested_only_when_configured(plan_of):
    assert "gpu" not in plan_of(resources={"gpu_rules": {"gpu": 0}}).rule_resources("gpu_rules")
    plan = plan_of(resources={"gpu_rules": {"gpu": 1, "gpu_model": "a100"}})
    assert plan.rule_resources("gpu_rules")["gpu_model"] == "a100"


def test_the_targets_follow_the_families(plan_of):
    assert plan_of().sweep_targets()[0] == "results/report/tradeoff.csv"
    assert plan_of("seq2seq/base.yaml").sweep_targets() == [
        "results/seq2seq/report/tradeoff.csv",
        "results/seq2seq/report/report.html",
    ]


def route(route, corpus="synth", size="E6D1"):
    return SimpleNamespace(
        teacher="minilm-l6", task="summary-synth", corpus=corpus, route=route, size=size
    )


def test_seq2seq_routes_read_what_they_learn_from(plan_of):
    plan = plan_of("seq2seq/base.yaml").seq2seq
    variants = plan.variants("minilm-l6")
    assert ("gold", "shrink") in variants and ("synth", "word") in variants
    assert "outputs" not in plan.distill_inputs(route("shrink", corpus="gold"))
    word = plan.distill_inputs(route("word"))
    assert word["topk"] == "results/seq2seq/cache/minilm-l6/summary-synth/synth/topk.npz"
    assert "topk" not in plan.distill_inputs(route("sequence"))
    with pytest.raises(ConfigError, match="shrink students learn from gold pairs alone"):
        plan.distill_inputs(route("shrink"))
    assert "kl_weight" not in plan.distill_settings(route("sequence"))["seq2seq"]["distill"]


def test_seq2seq_rows_are_named_by_their_role(plan_of):
    plan = plan_of("seq2seq/base.yaml").seq2seq
    lead = plan.identity(route("word"), "baseline")
    assert (lead["teacher"], lead["size"], lead["kind"]) == ("lead", "lead", "summary")
    assert plan.identity(route("word"), "student")["route"] == "word"
    assert "results/seq2seq/eval/lead/summary-synth.json" in plan.evaluation_files()


def test_a_trimmed_teacher_covers_every_family_text(plan_of):
    both = plan_of("seq2seq/base.yaml", families=["ner", "seq2seq"])
    task_files = both.teacher_text_files()["task"]
    assert "results/tasks/ner-synth/train.jsonl" in task_files
    assert "results/seq2seq/tasks/summary-synth/dev.jsonl" in task_files
