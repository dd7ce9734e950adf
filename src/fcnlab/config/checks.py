"""Validation of a training configuration: choices, ranges, the keys of the other task and the model."""

from __future__ import annotations

import dataclasses
import math
import re

from fcnlab.config.fields import TrainConfig, field_names, field_task, task_defaults
from fcnlab.errors import ConfigError
from fcnlab.taskinfo import TASKS

CHOICES: dict[str, tuple[str, ...]] = {
    "task": TASKS,
    "optimizer": ("sgd", "adamw"),
    "scheduler": ("cosine", "poly", "step", "constant"),
    "loss": ("ce", "lovasz", "dice", "ce+lovasz", "ce+dice"),
    "sampling": ("none", "rare"),
    "class_weights": ("none", "inverse", "median"),
    "amp": ("auto", "bf16", "fp16", "off"),
    "cache": ("auto", "memory", "disk", "off"),
    "augment_policy": ("none", "trivialaugment", "randaugment"),
    "lr_scaling": ("linear", "sqrt"),
    "compile_mode": ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs"),
}

POSITIVE = ("epochs", "batch_size", "lr", "image_size", "num_classes", "snapshot_tiles", "log_every")
NON_NEGATIVE = (
    "time_budget",
    "color_jitter",
    "eval_batch_size",
    "lr_base_batch",
    "momentum",
    "weight_decay",
    "warmup_epochs",
    "label_smoothing",
    "pad",
    "grad_clip",
    "limit",
    "val_limit",
    "input_size",
    "workers",
    "step_size",
    "gamma",
    "randaugment_ops",
    "cutmix",
    "mixup",
    "repeat_threshold",
)
PROBABILITIES = ("random_erasing", "mix_prob")


def spelled(name: str) -> str:
    """How the user spells config key ``name``: the key and its command-line option."""
    return f"option {name} (--{name.replace('_', '-')})"


_DEVICE_RE = re.compile(r"^(auto|cpu|mps|cuda(:\d+)?)$")


def validate(cfg: TrainConfig) -> TrainConfig:
    """Check value ranges and choices; raise ConfigError naming the option and the fix."""
    for name, choices in CHOICES.items():
        if getattr(cfg, name) not in choices:
            raise ConfigError(f"{spelled(name)}: {getattr(cfg, name)!r} is not one of {', '.join(choices)}")
    for name in POSITIVE:
        if getattr(cfg, name) <= 0:
            raise ConfigError(f"{spelled(name)}: must be > 0, got {getattr(cfg, name)}")
    for name in NON_NEGATIVE:
        if getattr(cfg, name) < 0:
            raise ConfigError(f"{spelled(name)}: must be >= 0, got {getattr(cfg, name)}")
    for spec in dataclasses.fields(TrainConfig):
        value = getattr(cfg, spec.name)
        if isinstance(value, float) and not math.isfinite(value):
            raise ConfigError(f"{spelled(spec.name)}: must be a finite number, got {value}")
    if not 0 < cfg.min_scale <= cfg.max_scale:
        raise ConfigError(
            f"options min_scale/max_scale (--min-scale/--max-scale): need 0 < min_scale <= max_scale, "
            f"got {cfg.min_scale}/{cfg.max_scale}"
        )
    if cfg.color_jitter >= 1:
        raise ConfigError(f"{spelled('color_jitter')}: must be < 1 (factors in [1-s, 1+s]), got {cfg.color_jitter}")
    for name in PROBABILITIES:
        if not 0 <= getattr(cfg, name) <= 1:
            raise ConfigError(f"{spelled(name)}: a probability, must be in [0, 1], got {getattr(cfg, name)}")
    if not 0 <= cfg.randaugment_magnitude <= 30:
        raise ConfigError(
            f"{spelled('randaugment_magnitude')}: a magnitude bin, must be in 0..30, got {cfg.randaugment_magnitude}"
        )
    if not 0 <= cfg.ema_decay < 1:
        raise ConfigError(f"{spelled('ema_decay')}: must be in [0, 1), got {cfg.ema_decay}")
    if cfg.nesterov and (cfg.optimizer != "sgd" or cfg.momentum <= 0):
        raise ConfigError(
            f"{spelled('nesterov')}: Nesterov momentum needs optimizer sgd and momentum > 0 (got "
            f"{cfg.optimizer}, momentum {cfg.momentum})"
        )
    if cfg.label_smoothing >= 1:
        raise ConfigError(f"{spelled('label_smoothing')}: must be < 1, got {cfg.label_smoothing}")
    if cfg.image_size < 32:
        raise ConfigError(
            f"{spelled('image_size')}: must be at least 32 (the networks downsample by 32), got {cfg.image_size}"
        )
    if cfg.task == "classify" and cfg.batch_size < 2:
        raise ConfigError(
            f"{spelled('batch_size')}: classification needs at least 2 images per step (BatchNorm "
            f"statistics of 1x1 features), got {cfg.batch_size}"
        )
    if cfg.task == "segment" and cfg.input_size and cfg.input_size < 32:
        raise ConfigError(
            f"{spelled('input_size')}: must be 0 (full size) or at least 32 (the networks downsample "
            f"by 32), got {cfg.input_size}"
        )
    if cfg.task == "segment" and cfg.image_size % 32:
        raise ConfigError(f"{spelled('image_size')}: segmentation crops must be a multiple of 32, got {cfg.image_size}")
    if cfg.sampling == "rare" and any(not 0 <= c < cfg.num_classes for c in cfg.rare_classes):
        raise ConfigError(
            f"{spelled('rare_classes')}: class ids must be in 0-{cfg.num_classes - 1}, got {cfg.rare_classes}"
        )
    if any(e <= 0 for e in cfg.snapshot_epochs):
        raise ConfigError(f"{spelled('snapshot_epochs')}: epochs start at 1, got {cfg.snapshot_epochs}")
    if not _DEVICE_RE.match(cfg.device):
        raise ConfigError(f"{spelled('device')}: {cfg.device!r} is not a device; use auto, cpu, cuda or cuda:N")
    _check_task_keys(cfg)
    _check_model(cfg)
    return cfg


def _check_model(cfg: TrainConfig) -> None:
    """The model must be registered and made for the config's task."""
    from fcnlab.models import list_models

    names = list_models(cfg.task)
    if cfg.model not in names:
        other = [t for t in TASKS if t != cfg.task and cfg.model in list_models(t)]
        why = f"is a {other[0]} model" if other else "is not a registered model"
        raise ConfigError(f"{spelled('model')}: {cfg.model!r} {why}; for {cfg.task} choose one of {', '.join(names)}")


def _check_task_keys(cfg: TrainConfig) -> None:
    """A key of the other task (its field's ``task``) must keep this task's default: a recipe that sets
    ``mixup`` for segmentation expects an effect it would not get."""
    default = task_defaults(cfg.task)
    for name in field_names():
        owner = field_task(name)
        if owner is not None and owner != cfg.task and getattr(cfg, name) != default[name]:
            raise ConfigError(
                f"{spelled(name)}: a {owner} option; {cfg.task} does not use it (remove it from the recipe)"
            )
