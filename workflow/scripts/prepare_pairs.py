from pathlib import Path

from medistill.core.runtime import prepare_job
from medistill.seq2seq.tasks import prepare_seq2seq_task

log = prepare_job(snakemake.log[0], snakemake.threads, snakemake.config)
settings = snakemake.params.settings
task = snakemake.wildcards.task
stats = prepare_seq2seq_task(
    settings["seq2seq"]["tasks"][task],
    Path(snakemake.output.stats).parent,
    seed=settings["seed"],
    allow_network=snakemake.config["allow_network"],
)
log.info("seq2seq task %s: %s", task, stats)
