# medistill: distil French medical teachers into small students, from corpus to Pareto report.
# Stages live in workflow/rules/, their logic in src/medistill/; config/README.md explains the config.
from snakemake.utils import min_version

min_version("9.0")


configfile: Path(workflow.basedir) / "config" / "config.yaml"


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/corpus.smk"
include: "workflow/rules/tasks.smk"
include: "workflow/rules/teachers.smk"
include: "workflow/rules/cache.smk"
include: "workflow/rules/distill.smk"
include: "workflow/rules/evaluate.smk"
include: "workflow/rules/report.smk"
include: "workflow/rules/seq2seq.smk"
include: "workflow/rules/generative.smk"


rule all:
    default_target: True
    input:
        PLAN.sweep_targets,
