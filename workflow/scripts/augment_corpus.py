from medistill.augment import augment_corpus_file
from medistill.runtime import prepare_job

prepare_job(snakemake.log[0], snakemake.threads, snakemake.config)
augment_corpus_file(
    snakemake.params.spec, snakemake.input.docs, snakemake.output.docs, snakemake.output.stats
)
