from medistill.core.runtime import prepare_job
from medistill.data.corpus import build_corpus

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
