from medistill.core.runtime import prepare_job
from medistill.data.augment import augment_corpus_file

log = prepare_job(snakemake.log[0], snakemake.threads, snakemake.config)
stats = augment_corpus_file(
    snakemake.params.spec,
    snakemake.input.docs,
    snakemake.input.build_stats,
    snakemake.output.docs,
    snakemake.output.stats,
)
log.info(
    "corpus %s: measured augmentation rates %s",
    snakemake.wildcards.corpus,
    stats["augmentation"]["measured_rates"],
)
