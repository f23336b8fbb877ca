from medistill.core.runtime import prepare_job
from medistill.seq2seq.distill import cache_teacher_outputs
from medistill.tracking import run_logger

prepare_job(snakemake.log[0], snakemake.threads, snakemake.config)
cache_teacher_outputs(
    snakemake.params.settings,
    teacher_dir=snakemake.input.teacher,
    docs_path=snakemake.input.docs,
    train_path=snakemake.input.train,
    out_path=snakemake.output[0],
    log_run=run_logger(snakemake.config),
)
