from pathlib import Path

from medistill.core.runtime import prepare_job
from medistill.seq2seq.distill import Seq2SeqStudentRun, distill_seq2seq_student
from medistill.tracking import run_logger

prepare_job(snakemake.log[0], snakemake.threads, snakemake.config)
names = {k: snakemake.wildcards[k] for k in ("teacher", "task", "corpus", "route", "size")}
run = Seq2SeqStudentRun(
    **names,
    teacher_dir=Path(snakemake.input.teacher),
    task_dir=Path(snakemake.input.train).parent,
    out_dir=Path(snakemake.output.model),
    seeds_dir=Path(snakemake.output.seeds),
    checkpoint=Path(snakemake.params.checkpoint),
    outputs_path=snakemake.input.get("outputs"),
    topk_path=snakemake.input.get("topk"),
)
distill_seq2seq_student(snakemake.params.settings, run, run_logger(snakemake.config))
