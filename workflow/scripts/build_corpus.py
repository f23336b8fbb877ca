from medistill.corpus import build_corpus
from medistill.runtime import prepare_job

prepare_job(snakemake.log[0], snakemake.threads, snakemake.config)
build_corpus(snakemake.params.spec, snakemake.output.docs, snakemake.output.stats)
