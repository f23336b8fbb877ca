from pathlib import Path

from medistill.report import build_report
from medistill.runtime import prepare_job
from medistill.tracking import log_run

config = snakemake.config
log = prepare_job(snakemake.log[0], snakemake.threads, config)
out_dir = Path(snakemake.output.csv).parent
table = build_report(snakemake.input.evals, out_dir, config, snakemake.input.models)
log.info("report: %d models evaluated", len(table))
students = table[table["role"] == "student"]
sweep = config["sweep"]
log_run(
    config,
    "report",
    params={"report": config["report"], "sweep": sweep},
    metrics={
        "n_models": len(table),
        "best_student_f1": students["f1"].max() if len(students) else float("nan"),
        "best_student_f1_retention": (
            students["f1_retention"].max() if len(students) else float("nan")
        ),
    },
    tags={
        "stage": "report",
        "task": sweep["task"],
        "teacher": ",".join(sweep["teachers"]),
        "corpus": ",".join(sweep["corpora"]),
        "size": ",".join(sweep["sizes"]),
    },
    artifacts=[Path(p) for p in snakemake.output if Path(p).is_file()],
)
