from pathlib import Path

from medistill.core.runtime import prepare_job
from medistill.generative.tagging import evaluate_generative_tagger
from medistill.tracking import run_logger

prepare_job(snakemake.log[0], snakemake.threads, snakemake.config)
evaluate_generative_tagger(
    snakemake.params.settings,
    tagger=snakemake.wildcards.tagger,
    model_dir=snakemake.input.get("model"),
    task_dir=Path(snakemake.input.train).parent,
    test_files={
        name: snakemake.input[name]
        for name in ("clean", *snakemake.params.settings["generative"]["robustness_sets"])
    },
    out_path=snakemake.output[0],
    reference_teacher=snakemake.params.reference,
    allow_network=snakemake.config["allow_network"],
    task=snakemake.wildcards.task,
    log_run=run_logger(snakemake.config),
)
