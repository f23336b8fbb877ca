from pathlib import Path

from medistill.core.runtime import prepare_job
from medistill.data.tasks import prepare_task

log = prepare_job(snakemake.log[0], snakemake.threads, snakemake.config)
settings = snakemake.params.settings
counts = prepare_task(
    snakemake.params.spec,
    Path(snakemake.output.train).parent,
    max_words=settings["max_words_per_sentence"],
    seed=settings["seed"],
)
log.info("task %s: %s", snakemake.wildcards.task, counts)
