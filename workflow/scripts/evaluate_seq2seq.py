from medistill.core.runtime import prepare_job
from medistill.seq2seq.evaluate import evaluate_seq2seq
from medistill.seq2seq.tasks import SEQ2SEQ_ROBUSTNESS_SETS
from medistill.tracking import run_logger

prepare_job(snakemake.log[0], snakemake.threads, snakemake.config)
tests = {k: snakemake.input[k] for k in ("clean", *SEQ2SEQ_ROBUSTNESS_SETS)}
evaluate_seq2seq(
    snakemake.params.settings,
    test_files=tests,
    out_path=snakemake.output[0],
    identity=snakemake.params.identity,
    log_run=run_logger(snakemake.config),
    model_dir=snakemake.input.get("model"),
    seeds_dir=snakemake.input.get("seeds"),
    train_path=snakemake.input.get("train"),
)
