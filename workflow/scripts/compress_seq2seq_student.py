from medistill.core.runtime import prepare_job
from medistill.seq2seq.distill import compress_seq2seq_runs

prepare_job(snakemake.log[0], snakemake.threads, snakemake.config)
compress_seq2seq_runs(
    snakemake.input.model,
    snakemake.input.seeds,
    snakemake.output.model,
    snakemake.output.seeds,
    remote=snakemake.params.settings["trust_remote_code"],
)
