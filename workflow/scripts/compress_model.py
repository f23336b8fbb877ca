from medistill.core.runtime import prepare_job
from medistill.models.compress import compress_runs

prepare_job(snakemake.log[0], snakemake.threads, snakemake.config)
compress_runs(
    snakemake.input.model,
    snakemake.input.seeds,
    snakemake.output.model,
    snakemake.output.seeds,
    kind=snakemake.params.kind,
    trust_remote_code=snakemake.params.settings["trust_remote_code"],
)
