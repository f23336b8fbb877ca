from medistill.core.runtime import prepare_job
from medistill.models.teachers import prepare_teacher
from medistill.tracking import run_logger

prepare_job(snakemake.log[0], snakemake.threads, snakemake.config)
prepare_teacher(
    snakemake.params.settings,
    teacher=snakemake.wildcards.teacher,
    corpus_paths=snakemake.input.corpora,
    task_paths=snakemake.input.task,
    out_dir=snakemake.output[0],
    allow_network=snakemake.config["allow_network"],
    log_run=run_logger(snakemake.config),
)
