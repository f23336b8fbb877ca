from pathlib import Path

from medistill.core.runtime import prepare_job
from medistill.seq2seq.report import build_seq2seq_report, log_seq2seq_report
from medistill.tracking import run_logger

log = prepare_job(snakemake.log[0], snakemake.threads, snakemake.config)
settings = snakemake.params.settings
table = build_seq2seq_report(snakemake.input, Path(snakemake.output.csv).parent, settings)
log.info("seq2seq report: %d rows", len(table))
log_seq2seq_report(settings, table, snakemake.output, log_run=run_logger(snakemake.config))
