from pathlib import Path

from medistill.core.runtime import prepare_job
from medistill.seq2seq.distill import distill_seq2seq_student
from medistill.tracking import run_logger

prepare_job(snakemake.log[0], snakemake.threads, snakemake.config)
distill_seq2seq_student(
    snakemake.params.settings,
    names={k: snakemake.wildcards[k] for k in ("teacher", "task", "corpus", "route", "size")},
    teacher_dir=snakemake.input.teacher,
    task_dir=Path(snakemake.input.train).parent,
    out_dir=snakemake.output.model,
    seeds_dir=snakemake.output.seeds,
    checkpoint=snakemake.params.checkpoint,
    log_run=run_logger(snakemake.config),
    outputs_path=snakemake.input.get("outputs"),
    topk_path=snakemake.input.get("topk"),
)
