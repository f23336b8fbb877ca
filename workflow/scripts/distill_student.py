from medistill.distill import distill_student
from medistill.runtime import prepare_job

prepare_job(snakemake.log[0], snakemake.threads, snakemake.config)
distill_student(
    snakemake.config,
    teacher=snakemake.wildcards.teacher,
    corpus=snakemake.wildcards.corpus,
    size=snakemake.wildcards.size,
    teacher_dir=snakemake.input.teacher,
    corpus_path=snakemake.input.docs,
    manifest_path=snakemake.input.cache,
    out_dir=snakemake.output[0],
    checkpoint=snakemake.params.checkpoint,
)
