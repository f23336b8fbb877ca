"""A config edit reruns exactly the jobs whose outputs depend on the edited value: each rule
declares its slice of the config as `params.settings` (Snakemake's params rerun trigger)."""

from __future__ import annotations

import os
import shutil

import pytest
from test_workflow import ROOT, snakemake

SMOKE = str(ROOT / "config" / "smoke.yaml")


def planned_jobs(workdir, override: str, tmp_path) -> dict[str, int]:
    """The jobs a dry run plans, per rule, with `override` layered over the smoke config."""
    edit = tmp_path / "edit.yaml"
    edit.write_text(override)
    run = snakemake(workdir, "-n", "--cores", "2", "--configfile", SMOKE, str(edit))
    assert run.returncode == 0, run.stderr[-3000:]
    if "Job stats:" not in run.stdout:
        assert "Nothing to be done" in run.stdout + run.stderr, run.stdout[-3000:]
        return {}
    stats = run.stdout.split("Job stats:")[1].split("\n\n")[0]
    rows = [line.split() for line in stats.splitlines()]
    counts = {row[0]: int(row[1]) for row in rows if len(row) == 2 and row[1].isdigit()}
    return {rule: n for rule, n in counts.items() if rule not in ("total", "all")}


# The smoke grid: teacher minilm-l6, corpus synth (+ gold baselines), sizes L1, L2-narrow,
# L1-int8 (compressed from L1, and the teacher compressed alike for same-runtime speedups), G1
# (general+task, with its own general cache); distillation mixes in the task's train split
# (gold_ratio), so the teacher's logits on it are cached too.
EDITS = {
    # The recipe's teacher-signal keys: the distilled students and what follows from them; the
    # gold-only baselines do not read the temperature.
    "distill.temperature": (
        "distill: {temperature: 3.0}\n",
        {"distill_student": 3, "compress_student": 1, "evaluate_student": 4, "report": 1},
    ),
    # One size's spec: that size (distilled and baseline), its int8 copies and their scores.
    "sizes.L1.layers": (
        "sizes: {L1: {layers: 2}}\n",
        {"distill_student": 2, "compress_student": 2, "evaluate_student": 4, "report": 1},
    ),
    # A corpus's augmentation: not the corpus build; the teacher's trimmed vocabulary covers the
    # augmented text, so the teacher and everything cut from it follow.
    "corpora.synth.augmentation.typo_rate": (
        "corpora: {synth: {augmentation: {typo_rate: 0.1}}}\n",
        {
            "augment_corpus": 1,
            "prepare_teacher": 1,
            "finetune_teacher": 1,
            "cache_teacher_logits": 1,
            "cache_train_logits": 1,
            "cache_general": 1,
            "distill_student": 6,
            "compress_student": 2,
            "compress_teacher": 1,
            "evaluate_teacher": 1,
            "evaluate_teacher_runtime": 1,
            "evaluate_student": 8,
            "report": 1,
        },
    ),
    # The general stage's cache settings: the general cache and the general-mode student only.
    "distill.general.mask_rate": (
        "distill: {general: {mask_rate: 0.2}}\n",
        {"cache_general": 1, "distill_student": 1, "evaluate_student": 1, "report": 1},
    ),
    # The teacher's fine-tuning recipe: not its preparation.
    "finetune.learning_rate": (
        "finetune: {learning_rate: 1.0e-4}\n",
        {
            "finetune_teacher": 1,
            "cache_teacher_logits": 1,
            "cache_train_logits": 1,
            "distill_student": 6,
            "compress_student": 2,
            "compress_teacher": 1,
            "evaluate_teacher": 1,
            "evaluate_teacher_runtime": 1,
            "evaluate_student": 8,
            "report": 1,
        },
    ),
    # Timing settings: every evaluation, no training.
    "evaluate.latency_runs": (
        "evaluate: {latency_runs: 7}\n",
        {"evaluate_teacher": 1, "evaluate_teacher_runtime": 1, "evaluate_student": 8, "report": 1},
    ),
    # Steps sized from epochs over the data: every student, baselines included (their budget
    # is the largest corpus's, so they also read the corpora).
    "distill.epochs": (
        "distill: {epochs: 1.0}\n",
        {"distill_student": 6, "compress_student": 2, "evaluate_student": 8, "report": 1},
    ),
    # Intermediate-layer transfer: the teacher's hidden states cached, the distilled students.
    "distill.intermediate.hidden_weight": (
        "distill: {intermediate: {hidden_weight: 1.0}}\n",
        {
            "cache_teacher_hidden": 1,
            "cache_train_hidden": 1,
            "distill_student": 3,
            "compress_student": 1,
            "evaluate_student": 4,
            "report": 1,
        },
    ),
    # Averaging the teacher's seed runs: its caches and what learns from them, not the teacher.
    "teachers.minilm-l6.average_seeds": (
        "teachers: {minilm-l6: {average_seeds: true}}\n",
        {
            "cache_teacher_logits": 1,
            "cache_train_logits": 1,
            "distill_student": 3,
            "compress_student": 1,
            "evaluate_student": 4,
            "report": 1,
        },
    ),
    # Cutting a size from the pretrained teacher: that size and its baseline, and what follows.
    "sizes.L1.cut_from": (
        "sizes: {L1: {cut_from: pretrained}}\n",
        {"distill_student": 2, "compress_student": 2, "evaluate_student": 4, "report": 1},
    ),
    # A generative tagger joins the comparison: its training and evaluation, and the report.
    "generative.sweep": (
        "generative: {taggers: {gen: {kind: finetuned, from: minilm-l6}}, sweep: [gen]}\n",
        {"finetune_generative_tagger": 1, "evaluate_generative_tagger": 1, "report": 1},
    ),
    # What only the report reads.
    "report.budgets": (
        "report: {budgets: [{name: tiny, max_params: 1000}]}\n",
        {"report": 1},
    ),
    # Execution settings change where a job runs, not what it computes.
    "resources and tracking": (
        "resources: {cpu_rules: {mem_mb: 4000}}\ntracking: {experiment: other}\n",
        {},
    ),
}


@pytest.mark.integration
@pytest.mark.parametrize("edited", sorted(EDITS))
def test_an_edit_plans_exactly_the_dependent_jobs(smoke_sweep, tmp_path, edited):
    workdir = tmp_path / "sweep"
    # Hard links: a dry run only reads the sweep (and sees the same mtimes), and 16 full copies
    # of it would take 26 GB of /tmp.
    shutil.copytree(smoke_sweep, workdir, symlinks=True, copy_function=os.link)
    override, expected = EDITS[edited]
    assert planned_jobs(workdir, override, tmp_path) == expected
