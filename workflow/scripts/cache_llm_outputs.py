from medistill.core.runtime import prepare_job
from medistill.seq2seq.llm import cache_llm_outputs
from medistill.tracking import run_logger

prepare_job(snakemake.log[0], snakemake.threads, snakemake.config)
cache_llm_outputs(
    snakemake.params.settings,
    teacher=snakemake.wildcards.teacher,
    task=snakemake.wildcards.task,
    train_path=snakemake.input.train,
    docs_path=snakemake.input.docs,
    out_path=snakemake.output.outputs,
    provenance_path=snakemake.output.provenance,
    log_run=run_logger(snakemake.config),
    allow_network=snakemake.config["allow_network"],
)
