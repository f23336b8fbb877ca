from medistill.core.runtime import prepare_job
from medistill.ner.cache import cache_teacher_logits

prepare_job(snakemake.log[0], snakemake.threads, snakemake.config)
cache_teacher_logits(
    snakemake.params.settings,
    teacher=snakemake.wildcards.teacher,
    teacher_dir=snakemake.input.teacher,
    corpus_path=snakemake.input.sentences,
    manifest_path=snakemake.output[0],
    seeds_dir=snakemake.input.get("seeds"),
)
