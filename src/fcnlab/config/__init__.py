"""Training configuration: one dataclass, the task defaults and validation.

Precedence: dataclass defaults < the task's defaults < a recipe < single options. The command line (one
``--key`` per field, values parsed as YAML, the recipe of ``--config``) is read by :mod:`fcnlab.cli.options`;
this package knows only the keys (:mod:`.fields`), their checks (:mod:`.checks`) and how a dict becomes a
config (:mod:`.parse`). Unknown keys are rejected with the list of valid keys. The resolved config is stored
as a plain dict in checkpoints and as ``config.yaml`` in the run folder.
"""

from fcnlab.config.checks import CHOICES, spelled, validate
from fcnlab.config.fields import (
    DEFAULT_GROUP,
    GROUPS,
    TASK_DEFAULTS,
    TrainConfig,
    field_group,
    field_help,
    field_names,
    field_task,
    option,
    task_defaults,
)
from fcnlab.config.parse import ALIASES, from_dict

__all__ = [
    "ALIASES",
    "CHOICES",
    "DEFAULT_GROUP",
    "GROUPS",
    "TASK_DEFAULTS",
    "TrainConfig",
    "field_group",
    "field_help",
    "field_names",
    "field_task",
    "from_dict",
    "option",
    "spelled",
    "task_defaults",
    "validate",
]
