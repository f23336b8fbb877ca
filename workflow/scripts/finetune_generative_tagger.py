from pathlib import Path

from medistill.core.runtime import prepare_job
from medistill.generative.finetune import finetune_generative_tagger
from medistill.tracking import run_logger

prepare_job(snakemake.log[0], snakemake.threads, snakemake.config)
finetune_generative_tagger(
    snakemake.params.settings,
    tagger=snakemake.wildcards.tagger,
    base_dir=snakemake.input.get("base"),
    task_dir=Path(snakemake.input.train).parent,
    out_dir=snakemake.output.model,
    seeds_dir=snakemake.output.seeds,
    checkpoint=snakemake.params.checkpoint,
    log_run=run_logger(snakemake.config),
    allow_network=snakemake.config["allow_network"],
)
