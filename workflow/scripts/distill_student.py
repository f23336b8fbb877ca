from pathlib import Path

from medistill.core.runtime import prepare_job
from medistill.ner.distill import StudentRun, distill_student
from medistill.tracking import run_logger

prepare_job(snakemake.log[0], snakemake.threads, snakemake.config)
run = StudentRun(
    teacher=snakemake.wildcards.teacher,
    corpus=snakemake.wildcards.corpus,
    size=snakemake.wildcards.size,
    teacher_dir=snakemake.input.teacher,
    task_dir=Path(snakemake.input.labels).parent,
    out_dir=snakemake.output.model,
    seeds_dir=snakemake.output.seeds,
    checkpoint=snakemake.params.checkpoint,
    base_dir=snakemake.input.get("base"),
    corpus_path=snakemake.input.get("docs"),
    manifest_paths=snakemake.input.get("cache", []),
    train_manifest_paths=snakemake.input.get("train_cache", []),
    hidden_manifest=snakemake.input.get("hidden_cache"),
    train_hidden_manifest=snakemake.input.get("train_hidden_cache"),
    general_manifest=snakemake.input.get("general_cache"),
    budget_corpora=snakemake.input.get("budget_corpora", []),
)
distill_student(snakemake.params.settings, run, log_run=run_logger(snakemake.config))
