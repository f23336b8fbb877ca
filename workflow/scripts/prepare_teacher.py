from medistill.runtime import prepare_job
from medistill.teachers import prepare_teacher

prepare_job(snakemake.log[0], snakemake.threads, snakemake.config)
prepare_teacher(
    snakemake.config,
    teacher=snakemake.wildcards.teacher,
    corpus_paths=snakemake.input.corpora,
    task_paths=snakemake.input.task,
    out_dir=snakemake.output[0],
)
