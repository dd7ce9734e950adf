"""A training configuration from a dict (a recipe, a saved config.yaml, command-line overrides): unknown keys
named with a suggestion, values converted to the field types, then validated."""

from __future__ import annotations

import difflib
import types
import typing
from typing import Any

from fcnlab.config.checks import spelled, validate
from fcnlab.config.fields import TASK_DEFAULTS, TrainConfig, field_names
from fcnlab.errors import ConfigError
from fcnlab.taskinfo import TASKS


def _coerce(name: str, value: Any, tp: Any) -> Any:
    """Convert ``value`` to the annotated type ``tp`` or raise ConfigError naming the option."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        if value is None or (isinstance(value, str) and value.lower() in ("none", "null", "")):
            return None
        inner = [a for a in args if a is not type(None)]
        return _coerce(name, value, inner[0])
    if origin is list:
        if isinstance(value, str):
            value = [v for v in value.replace("[", "").replace("]", "").split(",") if v.strip()]
        if isinstance(value, int):
            value = [value]
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{spelled(name)}: expected a list, got {value!r}")
        return [_coerce(name, v, args[0]) for v in value]
    try:
        if tp is bool:
            if isinstance(value, bool):
                return value
            if isinstance(value, str) and value.lower() in ("true", "yes", "1", "on"):
                return True
            if isinstance(value, str) and value.lower() in ("false", "no", "0", "off"):
                return False
            if isinstance(value, int) and value in (0, 1):
                return bool(value)
            raise ValueError
        if tp is int:
            if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
                raise ValueError
            return int(value)
        if tp is float:
            if isinstance(value, bool):
                raise ValueError
            return float(value)
        if tp is str:
            if isinstance(value, bool):  # YAML 1.1 reads off/no/on/yes as booleans: cache: off, amp: off
                return "off" if not value else "on"
            return str(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{spelled(name)}: expected {getattr(tp, '__name__', tp)}, got {value!r}") from None
    return value


def _types() -> dict[str, Any]:
    return typing.get_type_hints(TrainConfig)


ALIASES = {
    "learning_rate": "lr",
    "num_epochs": "epochs",
    "n_epochs": "epochs",
    "batch": "batch_size",
    "batchsize": "batch_size",
    "wd": "weight_decay",
    "classes": "num_classes",
    "n_classes": "num_classes",
    "arch": "model",
    "lr_scheduler": "scheduler",
    "train": "data",
    "train_dir": "data",
    "val_dir": "val",
    "crop_size": "image_size",
    "num_workers": "workers",
    "clip_grad": "grad_clip",
}
"""Names other tools use for fcnlab's keys, suggested when they appear in a recipe."""


def _suggest(key: str, valid: list[str]) -> str | None:
    """The valid key the user probably meant by ``key``, if any."""
    if key.lower() in ALIASES:
        return ALIASES[key.lower()]
    close = difflib.get_close_matches(key, valid, n=1)
    return close[0] if close else None


def from_dict(values: dict[str, Any], source: str = "config") -> TrainConfig:
    """Build a validated config from a dict; unknown keys are rejected with the valid ones listed."""
    valid = field_names()
    unknown = sorted(set(values) - set(valid))
    if unknown:
        named = [k + (f" (did you mean {m}?)" if (m := _suggest(k, valid)) else "") for k in unknown]
        raise ConfigError(f"{source}: unknown key(s) {', '.join(named)}; valid keys: {', '.join(valid)}")
    task = values.get("task", "classify")
    if task not in TASKS:
        raise ConfigError(f"{source}: task {task!r} is not one of {', '.join(TASKS)}")
    merged: dict[str, Any] = {**TASK_DEFAULTS[task], **values}
    hints = _types()
    kwargs = {k: _coerce(k, v, hints[k]) for k, v in merged.items()}
    return validate(TrainConfig(**kwargs))
