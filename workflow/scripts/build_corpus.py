from medistill.corpus import build_corpus
from medistill.runtime import prepare_job

log = prepare_job(snakemake.log[0], snakemake.threads, snakemake.config)
stats = build_corpus(
    snakemake.params.spec,
    snakemake.output.docs,
    snakemake.output.stats,
    name=snakemake.wildcards.corpus,
)
log.info(
    "corpus %s: %d documents, %d sentences",
    snakemake.wildcards.corpus,
    stats["n_docs"],
    stats["n_sentences"],
)
