# Config validation (before any job) and the job graph's plan: grid expansion, output paths,
# input functions and config slices live in the library (medistill.plan, medistill.seq2seq.plan,
# unit-tested in tests/test_plan.py); the rule files use PLAN's and S2S's methods.
from snakemake.exceptions import WorkflowError

from medistill.config import validate_config
from medistill.core.config_slices import config_slice
from medistill.core.errors import ConfigError
from medistill.plan import Plan
from medistill.data.tasks import ROBUSTNESS_SETS

try:
    config.update(
        validate_config(
            config, where=", ".join(map(str, workflow.configfiles)) or "config"
        )
    )
except ConfigError as error:
    raise WorkflowError(str(error)) from None

PLAN = Plan(config)
S2S = PLAN.seq2seq


wildcard_constraints:
    teacher="[^/]+",
    corpus="[^/]+",
    size="[^/]+",
    task="[^/]+",


def settings(*keys):
    """The config slice of `keys` ("a" or "a.b"): a rule's `params.settings`, so an edit of
    one of them reruns the rule (medistill.core.config_slices)."""
    return config_slice(config, *keys)
