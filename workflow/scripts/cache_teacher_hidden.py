from medistill.core.runtime import prepare_job
from medistill.ner.general_cache import cache_task_hidden

prepare_job(snakemake.log[0], snakemake.threads, snakemake.config)
cache_task_hidden(
    snakemake.params.settings,
    teacher=snakemake.wildcards.teacher,
    teacher_dir=snakemake.input.teacher,
    corpus_path=snakemake.input.sentences,
    manifest_path=snakemake.output[0],
)
