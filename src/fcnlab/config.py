"""Training configuration: one dataclass, the task defaults and validation.

Precedence: dataclass defaults < the task's defaults < a recipe < single options. The command line (one
``--key`` per field, values parsed as YAML, the recipe of ``--config``) is read by :mod:`fcnlab.cli.options`;
this module knows only the keys and their values.
Unknown keys are rejected with the list of valid keys. The resolved config is stored as a plain dict in
checkpoints and as ``config.yaml`` in the run folder.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import re
import types
import typing
from dataclasses import dataclass, field
from typing import Any

from fcnlab.errors import ConfigError
from fcnlab.taskinfo import TASKS

#: The groups of ``train --help``, in order. A field names its group (``option(..., group="data")``); one that
#: names none is listed under :data:`DEFAULT_GROUP` (and tests/test_cli_help.py names it, so it gets one).
GROUPS = ("data", "model", "optimisation", "schedule", "augmentation", "runtime", "output")
DEFAULT_GROUP = "other"


def option(default: Any, help: str, *, group: str | None = None, task: str | None = None) -> Any:
    """A :class:`TrainConfig` field with its ``--help`` text, its help ``group`` (one of :data:`GROUPS`) and the
    ``task`` it belongs to (None: both; a help text starting ``segment:`` or ``classify:`` says it too).
    A type as ``default`` (``list``) is a factory."""
    meta = {"help": help, "group": group, "task": task}
    if isinstance(default, type):
        return field(default_factory=default, metadata=meta)
    return field(default=default, metadata=meta)


@dataclass
class TrainConfig:
    """Every knob of a training run (both tasks); each field carries its ``--help`` text."""

    task: str = option("classify", "classify or segment")
    model: str = option("vgg16_bn", "the network (fcnlab.models.list_models())", group="model")
    num_classes: int = option(50, "classes of the output layer", group="model")
    data: str | None = option(None, "training folder", group="data")
    val: str | None = option(None, "validation folder", group="data")
    val_csv: str | None = option(
        None, "optional filename,label CSV for the validation folder (P1)", group="data", task="classify"
    )
    pretrained: bool = option(
        False, "start from torchvision's ImageNet weights (needs network or --weights)", group="model"
    )
    weights: str | None = option(None, "local torchvision-format state dict for the backbone", group="model")
    learn_upsampling: bool | None = option(
        None, "FCN upsamplers trainable (default: model's own default)", group="model", task="segment"
    )
    epochs: int = option(50, "training epochs", group="schedule")
    batch_size: int = option(128, "images per step (per process under torchrun)", group="optimisation")
    eval_batch_size: int = option(0, "batch size for validation (0: 2x batch_size)", group="runtime")
    optimizer: str = option("sgd", "sgd or adamw", group="optimisation")
    lr: float = option(0.05, "peak learning rate (mean cross-entropy convention)", group="optimisation")
    lr_base_batch: int = option(
        0,
        "when > 0, lr is the rate for this many images per step and is scaled to the "
        "global batch (batch_size x processes) by lr_scaling (0: lr as given)",
        group="optimisation",
    )
    lr_scaling: str = option(
        "linear", "with lr_base_batch: linear or sqrt scaling of lr with the batch", group="optimisation"
    )
    momentum: float = option(0.9, "SGD momentum", group="optimisation")
    nesterov: bool = option(False, "SGD: Nesterov momentum (needs momentum > 0)", group="optimisation")
    weight_decay: float = option(5e-4, "applied to conv/linear weights only (not BN, biases)", group="optimisation")
    scheduler: str = option("cosine", "cosine, poly, step or constant (after warm-up)", group="schedule")
    warmup_epochs: float = option(1.0, "linear warm-up length in epochs", group="schedule")
    step_size: int = option(30, "step scheduler: epochs between decays", group="schedule")
    gamma: float = option(0.1, "step scheduler: decay factor", group="schedule")
    label_smoothing: float = option(0.0, "cross-entropy label smoothing", group="optimisation")
    image_size: int = option(
        32, "classify: network input side (224 for ImageNet backbones); segment: crop side", group="model"
    )
    input_size: int = option(
        0,
        "segment: train on tiles reduced to this side (images by an area filter, masks by "
        "majority vote; it must divide the tile side: 128 for 512x512 tiles); evaluation and "
        "prediction reduce full-size inputs alike and upsample the logits (0: full size)",
        group="model",
    )
    augment: bool = option(True, "random augmentation of training batches", group="augmentation")
    pad: int = option(4, "classify: random-crop padding", group="augmentation")
    augment_policy: str = option(
        "none",
        "classify: per-image policy on the training batches (with augment): none, "
        "trivialaugment (TrivialAugmentWide) or randaugment",
        group="augmentation",
    )
    randaugment_ops: int = option(2, "classify: RandAugment operations per image", group="augmentation")
    randaugment_magnitude: int = option(9, "classify: RandAugment magnitude bin, 0-30", group="augmentation")
    random_erasing: float = option(
        0.0, "classify: probability of erasing a random rectangle of each training image", group="augmentation"
    )
    cutmix: float = option(0.0, "classify: CutMix Beta alpha (0: off); soft targets", group="augmentation")
    mixup: float = option(
        0.0, "classify: MixUp Beta alpha (0: off; with cutmix: one of the two per batch)", group="augmentation"
    )
    mix_prob: float = option(1.0, "classify: probability that a batch is mixed (cutmix/mixup)", group="augmentation")
    min_scale: float = option(
        0.75, "segment: smallest random zoom (crop covers up to 1/scale of the tile)", group="augmentation"
    )
    max_scale: float = option(1.25, "segment: largest random zoom", group="augmentation")
    class_weights: str = option(
        "none", "segment: none, inverse or median (frequency) loss weights", group="optimisation"
    )
    ignore_unknown: bool = option(False, "segment: leave class 6 (unknown) out of the loss", group="optimisation")
    loss: str = option(
        "ce", "segment: ce, lovasz, dice, ce+lovasz or ce+dice (class weights apply to ce only)", group="optimisation"
    )
    sampling: str = option(
        "none", "segment: none, or rare (repeat-factor sampling of tiles with rare classes)", group="data"
    )
    rare_classes: list[int] = option(
        list, "segment: the classes sampling rare boosts (empty: every class)", group="data"
    )
    repeat_threshold: float = option(
        1.0,
        "segment: sampling rare: a class in fewer than this share of the tiles makes its tiles repeat",
        group="data",
    )
    seed: int = option(0, "random seed (rank r uses seed + r for augmentation)", group="runtime")
    deterministic: bool = option(False, "bitwise-reproducible algorithms (slower)", group="runtime")
    device: str = option("auto", "auto, cpu, cuda or cuda:N", group="runtime")
    amp: str = option("auto", "auto (bf16 on CUDA, off on CPU), bf16, fp16 or off", group="runtime")
    channels_last: bool = option(
        True, "channels-last format where faster (CUDA; CPU for inputs >= 128 px or airnet)", group="runtime"
    )
    compile: bool = option(False, "torch.compile the model (before DDP)", group="runtime")
    compile_mode: str = option(
        "default",
        "torch.compile mode: default, reduce-overhead (CUDA graphs), max-autotune or max-autotune-no-cudagraphs",
        group="runtime",
    )
    resident: bool = option(
        False,
        "keep the decoded training and validation data on the GPU when it fits "
        "(no loader thread, no per-step copies); host memory otherwise and on the CPU",
        group="runtime",
    )
    workers: int = option(2, "data-loader workers for file-streaming evaluation/prediction", group="runtime")
    cache: str = option("auto", "decoded-data cache: auto, memory, disk or off", group="data")
    grad_clip: float = option(0.0, "clip gradient norm to this value (0: off)", group="optimisation")
    ema: bool = option(
        False,
        "keep an exponential moving average of the weights (BN statistics too); it is "
        "what is evaluated, kept in best.pt and loaded for inference",
        group="optimisation",
    )
    ema_decay: float = option(0.999, "EMA decay per optimizer step", group="optimisation")
    ema_warmup: bool = option(
        True, "EMA decay min(ema_decay, (1 + t) / (10 + t)) at step t (for short runs)", group="optimisation"
    )
    limit: int = option(
        0, "use N training samples drawn with --seed, every class alike for classify (0: all)", group="data"
    )
    val_limit: int = option(
        0, "use N validation samples drawn with --seed, every class alike for classify (0: all)", group="data"
    )
    snapshot_epochs: list[int] = option(list, "segment: epochs whose val masks are saved", group="output")
    snapshot_tiles: int = option(3, "segment: validation tiles shown in snapshots", group="output")
    snapshot_images: list[str] = option(
        list, "segment: val tiles to snapshot, by file name (default: evenly spaced)", group="output"
    )
    sync_bn: bool = option(False, "convert BatchNorm to SyncBatchNorm under torchrun", group="runtime")
    log_every: int = option(50, "steps between log lines when not on a terminal", group="output")
    tensorboard: bool = option(False, "also write TensorBoard event files (needs tensorboard)", group="output")

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
    "augment_policy": ("none", "trivialaugment", "randaugment"),
    "lr_scaling": ("linear", "sqrt"),
    "compile_mode": ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs"),
}

POSITIVE = ("epochs", "batch_size", "lr", "image_size", "num_classes", "snapshot_tiles", "log_every")
NON_NEGATIVE = (
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
CLASSIFY_ONLY = {"augment_policy": "none", "random_erasing": 0.0, "cutmix": 0.0, "mixup": 0.0}


def field_names() -> list[str]:
    """All valid config keys."""
    return [f.name for f in dataclasses.fields(TrainConfig)]


def field_group(name: str) -> str:
    """The ``--help`` group of config key ``name`` (:data:`DEFAULT_GROUP` when its field names none)."""
    group = {f.name: f.metadata.get("group") for f in dataclasses.fields(TrainConfig)}.get(name)
    return group if group in GROUPS else DEFAULT_GROUP


def field_task(name: str) -> str | None:
    """The task config key ``name`` belongs to (None: both): its ``task`` metadata, else a help text that starts
    with ``segment:`` or ``classify:`` (and names no other task)."""
    meta = {f.name: f.metadata for f in dataclasses.fields(TrainConfig)}[name]
    if meta.get("task"):
        return str(meta["task"])
    text = str(meta.get("help", ""))
    own = [t for t in TASKS if text.startswith(f"{t}:")]
    return own[0] if own and not any(f"{t}:" in text for t in TASKS if t != own[0]) else None


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
    if cfg.task != "classify":
        on = [k for k, off in CLASSIFY_ONLY.items() if getattr(cfg, k) != off]
        if on:
            raise ConfigError(
                f"{spelled(on[0])}: a classification augmentation; {cfg.task} does not use it "
                f"(remove it from the recipe)"
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
    if cfg.task == "classify" and (cfg.loss != "ce" or cfg.sampling != "none"):
        raise ConfigError(
            f"options loss/sampling (--loss/--sampling): segmentation options; classification trains "
            f"with cross-entropy on every image (got loss {cfg.loss!r}, sampling {cfg.sampling!r})"
        )
    if cfg.sampling == "rare" and any(not 0 <= c < cfg.num_classes for c in cfg.rare_classes):
        raise ConfigError(
            f"{spelled('rare_classes')}: class ids must be in 0-{cfg.num_classes - 1}, got {cfg.rare_classes}"
        )
    if any(e <= 0 for e in cfg.snapshot_epochs):
        raise ConfigError(f"{spelled('snapshot_epochs')}: epochs start at 1, got {cfg.snapshot_epochs}")
    if not _DEVICE_RE.match(cfg.device):
        raise ConfigError(f"{spelled('device')}: {cfg.device!r} is not a device; use auto, cpu, cuda or cuda:N")
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
