from pathlib import Path

from medistill.core.runtime import prepare_job
from medistill.ner.finetune import finetune_teacher
from medistill.tracking import run_logger

prepare_job(snakemake.log[0], snakemake.threads, snakemake.config)
finetune_teacher(
    snakemake.params.settings,
    teacher=snakemake.wildcards.teacher,
    task=snakemake.wildcards.task,
    base_dir=snakemake.input.base,
    task_dir=Path(snakemake.input.train).parent,
    out_dir=snakemake.output.model,
    seeds_dir=snakemake.output.seeds,
    checkpoint=snakemake.params.checkpoint,
    log_run=run_logger(snakemake.config),
)
