from medistill.core.runtime import prepare_job
from medistill.data.tasks import ROBUSTNESS_SETS
from medistill.ner.evaluate import evaluate_to_json
from medistill.report.cards import write_model_card
from medistill.tracking import attach_artifacts, run_logger

prepare_job(snakemake.log[0], snakemake.threads, snakemake.config)
settings = snakemake.params.settings
wildcards = snakemake.wildcards
result = evaluate_to_json(
    settings,
    model_dir=snakemake.input.model,
    seeds_dir=snakemake.input.seeds,
    test_files={name: snakemake.input[name] for name in ("clean", *ROBUSTNESS_SETS)},
    out_path=snakemake.output.scores,
    counts_path=snakemake.output.counts,
    baseline_counts_path=snakemake.input.get("baseline_counts"),
    identity={
        "teacher": wildcards.teacher,
        "corpus": snakemake.params.corpus,
        "size": snakemake.params.size,
        "task": wildcards.task,
        "role": snakemake.params.role,
        "runtime": snakemake.params.runtime,
        "reference_teacher": snakemake.params.reference,
        "baseline_teacher": snakemake.params.baseline,
    },
    log_run=run_logger(snakemake.config),
)
# The model card needs the scores, so it is written here, into the model folder (Snakemake
# dates a directory() output by its .snakemake_timestamp file: nothing reruns because of it).
card = write_model_card(snakemake.input.model, result, settings)
run = "/".join(result[k] for k in ("teacher", "corpus", "size", "task"))
attach_artifacts(snakemake.config, f"evaluate/{run}", [card])
