from pathlib import Path

from medistill.core.runtime import prepare_job
from medistill.seq2seq.distill import cache_teacher_topk

log = prepare_job(snakemake.log[0], snakemake.threads, snakemake.config)
tokens = cache_teacher_topk(
    snakemake.params.settings,
    teacher_dir=snakemake.input.teacher,
    task_dir=Path(snakemake.input.train).parent,
    outputs_path=snakemake.input.outputs,
    out_path=snakemake.output[0],
)
log.info("teacher top-k cached at %d target tokens", tokens)
