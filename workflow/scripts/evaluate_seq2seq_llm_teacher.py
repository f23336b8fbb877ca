from medistill.core.runtime import prepare_job
from medistill.seq2seq.llm import evaluate_llm_teacher
from medistill.seq2seq.tasks import SEQ2SEQ_ROBUSTNESS_SETS
from medistill.tracking import run_logger

prepare_job(snakemake.log[0], snakemake.threads, snakemake.config)
evaluate_llm_teacher(
    snakemake.params.settings,
    teacher=snakemake.wildcards.teacher,
    test_files={k: snakemake.input[k] for k in ("clean", *SEQ2SEQ_ROBUSTNESS_SETS)},
    train_path=snakemake.input.train,
    out_path=snakemake.output[0],
    identity=snakemake.params.identity,
    log_run=run_logger(snakemake.config),
    allow_network=snakemake.config["allow_network"],
)
