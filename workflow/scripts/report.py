from pathlib import Path

from medistill.report import build_report, log_report
from medistill.runtime import prepare_job

config = snakemake.config
log = prepare_job(snakemake.log[0], snakemake.threads, config)
out_dir = Path(snakemake.output.csv).parent
table = build_report(snakemake.input.evals, out_dir, config, snakemake.input.models)
log.info("report: %d models evaluated", len(table))
log_report(config, table, snakemake.output)
