from medistill.evaluate import evaluate_to_json
from medistill.runtime import prepare_job

prepare_job(snakemake.log[0], snakemake.threads, snakemake.config)
wildcards = snakemake.wildcards
student = snakemake.params.role == "student"
evaluate_to_json(
    snakemake.config,
    model_dir=snakemake.input.model,
    test_files={"clean": snakemake.input.clean, "typo5": snakemake.input.typo5},
    out_path=snakemake.output[0],
    identity={
        "teacher": wildcards.teacher,
        "corpus": wildcards.corpus if student else "teacher",
        "size": wildcards.size if student else "teacher",
        "task": wildcards.task,
        "role": snakemake.params.role,
    },
)
