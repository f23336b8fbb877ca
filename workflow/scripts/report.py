from pathlib import Path

from medistill.core.runtime import prepare_job
from medistill.report.build import build_report, log_report
from medistill.tracking import run_logger

log = prepare_job(snakemake.log[0], snakemake.threads, snakemake.config)
settings = snakemake.params.settings
out_dir = Path(snakemake.output.csv).parent
table = build_report(snakemake.input.evals, out_dir, settings, snakemake.input.models)
log.info("report: %d models evaluated", len(table))
log_report(settings, table, snakemake.output, log_run=run_logger(snakemake.config))
