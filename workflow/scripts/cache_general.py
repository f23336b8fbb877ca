from medistill.core.runtime import prepare_job
from medistill.ner.general_cache import cache_general

prepare_job(snakemake.log[0], snakemake.threads, snakemake.config)
settings = snakemake.params.settings
general = settings["distill"]["general"]
cache_general(
    settings,
    teacher=snakemake.wildcards.teacher,
    teacher_dir=snakemake.input.teacher,
    corpus_path=snakemake.input.docs,
    manifest_path=snakemake.output[0],
    k=general["k"],
    mask_rate=general["mask_rate"],
    hidden_layers=general["hidden_layers"],
)
