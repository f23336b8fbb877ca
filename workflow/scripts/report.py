from pathlib import Path

from medistill.report import build_report
from medistill.runtime import prepare_job

log = prepare_job(snakemake.log[0], snakemake.threads, snakemake.config)
table = build_report(snakemake.input, Path(snakemake.output.csv).parent)
log.info("report: %d models evaluated", len(table))
