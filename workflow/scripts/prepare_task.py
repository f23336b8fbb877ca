from pathlib import Path

from medistill.runtime import prepare_job
from medistill.tasks import prepare_task

config = snakemake.config
log = prepare_job(snakemake.log[0], snakemake.threads, config)
counts = prepare_task(
    snakemake.params.spec,
    Path(snakemake.output.train).parent,
    max_words=config["max_words_per_sentence"],
    seed=config["seed"],
)
log.info("task %s: %s", snakemake.wildcards.task, counts)
