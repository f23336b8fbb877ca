from medistill.compress import compress_student
from medistill.runtime import prepare_job

prepare_job(snakemake.log[0], snakemake.threads, snakemake.config)
compress_student(snakemake.input[0], snakemake.output[0], kind=snakemake.params.kind)
