"""Training configuration: one dataclass, YAML recipes, command-line overrides and validation.

Precedence: dataclass defaults < the task's defaults < ``--config FILE`` (YAML) < command-line options.
Every field is also a command-line option (``lr`` -> ``--lr``, ``batch_size`` -> ``--batch-size``) whose
value is parsed as YAML (``--snapshot-epochs 5,25,50`` and ``--snapshot-epochs "[5, 25, 50]"`` both work).
Unknown keys are rejected with the list of valid keys. The resolved config is stored as a plain dict in
checkpoints and as ``config.yaml`` in the run folder.
"""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import math
import re
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from fcnlab.errors import ConfigError
from fcnlab.tasks import TASKS


def option(default: Any, help: str) -> Any:
    """A :class:`TrainConfig` field with its ``--help`` text; a type as ``default`` (``list``) is a factory."""
    if isinstance(default, type):
        return field(default_factory=default, metadata={"help": help})
    return field(default=default, metadata={"help": help})


@dataclass
class TrainConfig:
    """Every knob of a training run (both tasks); each field carries its ``--help`` text."""

    task: str = option("classify", "classify or segment")
    model: str = option("vgg16_bn", "a name from fcnlab.models.list_models()")
    num_classes: int = option(50, "classes of the output layer")
    data: str | None = option(None, "training folder")
    val: str | None = option(None, "validation folder")
    val_csv: str | None = option(None, "optional filename,label CSV for the validation folder (P1)")
    pretrained: bool = option(False, "start from torchvision's ImageNet weights (needs network or --weights)")
    weights: str | None = option(None, "local torchvision-format state dict for the backbone")
    learn_upsampling: bool | None = option(None, "FCN upsamplers trainable (default: model's own default)")
    epochs: int = option(50, "training epochs")
    batch_size: int = option(128, "images per step (per process under torchrun)")
    eval_batch_size: int = option(0, "batch size for validation (0: 2x batch_size)")
    optimizer: str = option("sgd", "sgd or adamw")
    lr: float = option(0.05, "peak learning rate (mean cross-entropy convention)")
    momentum: float = option(0.9, "SGD momentum")
    weight_decay: float = option(5e-4, "applied to conv/linear weights only (not BN, biases)")
    scheduler: str = option("cosine", "cosine, poly, step or constant (after warm-up)")
    warmup_epochs: float = option(1.0, "linear warm-up length in epochs")
    step_size: int = option(30, "step scheduler: epochs between decays")
    gamma: float = option(0.1, "step scheduler: decay factor")
    label_smoothing: float = option(0.0, "cross-entropy label smoothing")
    image_size: int = option(32, "classify: network input side (224 for ImageNet backbones); segment: crop side")
    augment: bool = option(True, "random augmentation of training batches")
    pad: int = option(4, "classify: random-crop padding")
    min_scale: float = option(0.75, "segment: smallest random zoom (crop covers up to 1/scale of the tile)")
    max_scale: float = option(1.25, "segment: largest random zoom")
    class_weights: str = option("none", "segment: none, inverse or median (frequency) loss weights")
    ignore_unknown: bool = option(False, "segment: leave class 6 (unknown) out of the loss")
    loss: str = option("ce", "segment: ce, lovasz, dice, ce+lovasz or ce+dice (class weights apply to ce only)")
    sampling: str = option("none", "segment: none, or rare (repeat-factor sampling of tiles with rare classes)")
    rare_classes: list[int] = option(list, "segment: the classes sampling rare boosts (empty: every class)")
    repeat_threshold: float = option(1.0, "segment: sampling rare: a class in fewer than this share of the "
                                          "tiles makes its tiles repeat")
    seed: int = option(0, "random seed (rank r uses seed + r for augmentation)")
    deterministic: bool = option(False, "bitwise-reproducible algorithms (slower)")
    device: str = option("auto", "auto, cpu, cuda or cuda:N")
    amp: str = option("auto", "auto (bf16 on CUDA, off on CPU), bf16, fp16 or off")
    channels_last: bool = option(True, "channels-last format where faster (CUDA; CPU for inputs >= 128 px)")
    compile: bool = option(False, "torch.compile the model (before DDP)")
    workers: int = option(2, "data-loader workers for file-streaming evaluation/prediction")
    cache: str = option("auto", "decoded-data cache: auto, memory, disk or off")
    grad_clip: float = option(0.0, "clip gradient norm to this value (0: off)")
    limit: int = option(0, "use only the first N training samples (0: all)")
    val_limit: int = option(0, "use only the first N validation samples (0: all)")
    snapshot_epochs: list[int] = option(list, "segment: epochs whose val masks are saved")
    snapshot_tiles: int = option(3, "segment: validation tiles shown in snapshots")
    sync_bn: bool = option(False, "convert BatchNorm to SyncBatchNorm under torchrun")
    log_every: int = option(50, "steps between log lines when not on a terminal")
    tensorboard: bool = option(False, "also write TensorBoard event files (needs tensorboard)")

    def to_dict(self) -> dict[str, Any]:
        """Plain dict (YAML- and ``torch.load(weights_only=True)``-safe)."""
        return dataclasses.asdict(self)


TASK_DEFAULTS: dict[str, dict[str, Any]] = {
    "classify": {},
    "segment": {
        "model": "fcn32s_vgg16",
        "num_classes": 7,
        "batch_size": 8,
        "lr": 0.01,
        "image_size": 512,
        "warmup_epochs": 0.0,
        "rare_classes": [2, 4],  # rangeland and water
    },
}

CHOICES: dict[str, tuple[str, ...]] = {
    "task": TASKS,
    "optimizer": ("sgd", "adamw"),
    "scheduler": ("cosine", "poly", "step", "constant"),
    "loss": ("ce", "lovasz", "dice", "ce+lovasz", "ce+dice"),
    "sampling": ("none", "rare"),
    "class_weights": ("none", "inverse", "median"),
    "amp": ("auto", "bf16", "fp16", "off"),
    "cache": ("auto", "memory", "disk", "off"),
}

POSITIVE = ("epochs", "batch_size", "lr", "image_size", "num_classes", "snapshot_tiles", "log_every")
NON_NEGATIVE = ("eval_batch_size", "momentum", "weight_decay", "warmup_epochs", "label_smoothing", "pad",
                "grad_clip", "limit", "val_limit", "workers", "step_size", "gamma", "repeat_threshold")


def field_names() -> list[str]:
    """All valid config keys."""
    return [f.name for f in dataclasses.fields(TrainConfig)]


def field_help() -> dict[str, str]:
    """The ``--help`` text of each config key."""
    return {f.name: f.metadata.get("help", "") for f in dataclasses.fields(TrainConfig)}


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
            raise ConfigError(f"{option(name)}: expected a list, got {value!r}")
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
        raise ConfigError(f"{option(name)}: expected {getattr(tp, '__name__', tp)}, got {value!r}") from None
    return value


def _types() -> dict[str, Any]:
    return typing.get_type_hints(TrainConfig)


def option(name: str) -> str:
    """How the user spells config key ``name``: the key and its command-line option."""
    return f"option {name} (--{name.replace('_', '-')})"


_DEVICE_RE = re.compile(r"^(auto|cpu|mps|cuda(:\d+)?)$")


def validate(cfg: TrainConfig) -> TrainConfig:
    """Check value ranges and choices; raise ConfigError naming the option and the fix."""
    for name, choices in CHOICES.items():
        if getattr(cfg, name) not in choices:
            raise ConfigError(f"{option(name)}: {getattr(cfg, name)!r} is not one of {', '.join(choices)}")
    for name in POSITIVE:
        if getattr(cfg, name) <= 0:
            raise ConfigError(f"{option(name)}: must be > 0, got {getattr(cfg, name)}")
    for name in NON_NEGATIVE:
        if getattr(cfg, name) < 0:
            raise ConfigError(f"{option(name)}: must be >= 0, got {getattr(cfg, name)}")
    for name in dataclasses.fields(TrainConfig):
        value = getattr(cfg, name.name)
        if isinstance(value, float) and not math.isfinite(value):
            raise ConfigError(f"{option(name.name)}: must be a finite number, got {value}")
    if not 0 < cfg.min_scale <= cfg.max_scale:
        raise ConfigError(f"options min_scale/max_scale (--min-scale/--max-scale): need 0 < min_scale <= max_scale, "
                          f"got {cfg.min_scale}/{cfg.max_scale}")
    if cfg.label_smoothing >= 1:
        raise ConfigError(f"{option('label_smoothing')}: must be < 1, got {cfg.label_smoothing}")
    if cfg.image_size < 32:
        raise ConfigError(f"{option('image_size')}: must be at least 32 (the networks downsample by 32), "
                          f"got {cfg.image_size}")
    if cfg.task == "classify" and cfg.batch_size < 2:
        raise ConfigError(f"{option('batch_size')}: classification needs at least 2 images per step (BatchNorm "
                          f"statistics of 1x1 features), got {cfg.batch_size}")
    if cfg.task == "segment" and cfg.image_size % 32:
        raise ConfigError(f"{option('image_size')}: segmentation crops must be a multiple of 32, got {cfg.image_size}")
    if cfg.task == "classify" and (cfg.loss != "ce" or cfg.sampling != "none"):
        raise ConfigError(f"options loss/sampling (--loss/--sampling): segmentation options; classification trains "
                          f"with cross-entropy on every image (got loss {cfg.loss!r}, sampling {cfg.sampling!r})")
    if cfg.sampling == "rare" and any(not 0 <= c < cfg.num_classes for c in cfg.rare_classes):
        raise ConfigError(f"{option('rare_classes')}: class ids must be in 0-{cfg.num_classes - 1}, "
                          f"got {cfg.rare_classes}")
    if any(e <= 0 for e in cfg.snapshot_epochs):
        raise ConfigError(f"{option('snapshot_epochs')}: epochs start at 1, got {cfg.snapshot_epochs}")
    if not _DEVICE_RE.match(cfg.device):
        raise ConfigError(f"{option('device')}: {cfg.device!r} is not a device; use auto, cpu, cuda or cuda:N")
    _check_model(cfg)
    return cfg


def _check_model(cfg: TrainConfig) -> None:
    """The model must be registered and made for the config's task."""
    from fcnlab.models import list_models

    names = list_models(cfg.task)
    if cfg.model not in names:
        other = [t for t in TASKS if t != cfg.task and cfg.model in list_models(t)]
        why = f"is a {other[0]} model" if other else "is not a registered model"
        raise ConfigError(f"{option('model')}: {cfg.model!r} {why}; for {cfg.task} choose one of {', '.join(names)}")


ALIASES = {"learning_rate": "lr", "num_epochs": "epochs", "n_epochs": "epochs", "batch": "batch_size",
           "batchsize": "batch_size", "wd": "weight_decay", "classes": "num_classes", "n_classes": "num_classes",
           "arch": "model", "lr_scheduler": "scheduler", "train": "data", "train_dir": "data", "val_dir": "val",
           "crop_size": "image_size", "num_workers": "workers", "clip_grad": "grad_clip"}
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


def load_yaml(path: str | Path) -> dict[str, Any]:
    """Read a YAML recipe into a dict; errors name the file."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: config file does not exist")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML ({str(e).splitlines()[0]})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of keys to values at the top level")
    return data


def add_config_arguments(parser: argparse.ArgumentParser, skip: tuple[str, ...] = ("task",)) -> None:
    """Add ``--config`` and one ``--<key>`` option per config field (values parsed as YAML)."""
    parser.add_argument("--config", help="YAML recipe (e.g. configs/p1_vgg16bn.yaml)")
    group = parser.add_argument_group("config overrides (any key of the recipe)")
    helps = field_help()
    for name in field_names():
        if name in skip:
            continue
        group.add_argument(f"--{name.replace('_', '-')}", dest=f"cfg_{name}", metavar="V",
                           default=None, help=helps.get(name, ""))


def overrides_from_args(args: argparse.Namespace) -> dict[str, Any]:
    """The config options given on the command line (``--lr 0.1`` ...), each value parsed as YAML."""
    values: dict[str, Any] = {}
    for name in field_names():
        raw = getattr(args, f"cfg_{name}", None)
        if raw is not None:
            try:
                values[name] = yaml.safe_load(raw) if isinstance(raw, str) else raw
            except yaml.YAMLError:
                values[name] = raw
    return values


def resolve(args: argparse.Namespace, task: str) -> TrainConfig:
    """Merge task defaults, ``--config`` YAML and command-line overrides into a validated config."""
    values: dict[str, Any] = {}
    source = "command line"
    if getattr(args, "config", None):
        values.update(load_yaml(args.config))
        source = str(args.config)
        if values.get("task", task) != task:
            raise ConfigError(f"{args.config}: recipe is for task {values['task']!r}, not {task!r}")
    values.update(overrides_from_args(args))
    values["task"] = task
    return from_dict(values, source)


def save_yaml(cfg: TrainConfig | dict[str, Any], path: str | Path) -> None:
    """Write the resolved config as YAML (atomically)."""
    from fcnlab.runtime.files import atomic_write_text

    data = cfg.to_dict() if isinstance(cfg, TrainConfig) else dict(cfg)
    atomic_write_text(path, yaml.safe_dump(data, sort_keys=False))
