from pathlib import Path

from medistill.core.runtime import prepare_job
from medistill.generative.silver_labels import label_corpus

prepare_job(snakemake.log[0], snakemake.threads, snakemake.config)
label_corpus(
    snakemake.params.settings,
    teacher=snakemake.wildcards.teacher,
    model_dir=snakemake.input.get("model"),
    task_dir=Path(snakemake.input.labels).parent,
    corpus_path=snakemake.input.sentences,
    manifest_path=snakemake.output[0],
    allow_network=snakemake.config["allow_network"],
)
