"""The training configuration's keys: one dataclass field per key, with its help text, help group and the
task it belongs to (recorded once, here; help prefixes and refusals of the other task's keys derive from it),
and each task's own defaults."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

#: The groups of ``train --help``, in order. A field names its group (``option(..., group="data")``); one that
#: names none is listed under :data:`DEFAULT_GROUP` (and tests/test_cli_help.py names it, so it gets one).
GROUPS = ("data", "model", "optimisation", "schedule", "augmentation", "runtime", "output")
DEFAULT_GROUP = "other"


def option(default: Any, help: str, *, group: str | None = None, task: str | None = None) -> Any:
    """A :class:`TrainConfig` field with its ``--help`` text, its help ``group`` (one of :data:`GROUPS`) and the
    ``task`` it belongs to (None: both). A type as ``default`` (``list``) is a factory."""
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
        None, "optional filename,label CSV for the validation folder", group="data", task="classify"
    )
    pretrained: bool = option(
        False, "start from torchvision's ImageNet weights (needs network or --weights)", group="model"
    )
    weights: str | None = option(None, "local torchvision-format state dict for the backbone", group="model")
    learn_upsampling: bool | None = option(
        None, "FCN upsamplers trainable (default: model's own default)", group="model", task="segment"
    )
    epochs: int = option(50, "training epochs", group="schedule")
    time_budget: float = option(
        0.0,
        "at most this many minutes for the whole command, data loading included: from the end of the warm-up, "
        "fewer epochs (snapshot_epochs alike) if they would not fit; a large --epochs fills it (0: off)",
        group="schedule",
    )
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
        "train on tiles reduced to this side (images by an area filter, masks by "
        "majority vote; it must divide the tile side: 128 for 512x512 tiles); evaluation and "
        "prediction reduce full-size inputs alike and upsample the logits (0: full size)",
        group="model",
        task="segment",
    )
    augment: bool = option(True, "random augmentation of training batches", group="augmentation")
    pad: int = option(4, "random-crop padding", group="augmentation", task="classify")
    augment_policy: str = option(
        "none",
        "per-image policy on the training batches (with augment): none, "
        "trivialaugment (TrivialAugmentWide) or randaugment",
        group="augmentation",
        task="classify",
    )
    randaugment_ops: int = option(2, "RandAugment operations per image", group="augmentation", task="classify")
    randaugment_magnitude: int = option(9, "RandAugment magnitude bin, 0-30", group="augmentation", task="classify")
    random_erasing: float = option(
        0.0, "probability of erasing a random rectangle of each training image", group="augmentation", task="classify"
    )
    cutmix: float = option(
        0.0,
        "CutMix Beta alpha (0: off); classify: a box of another image, soft targets; segment: a box of another tile"
        " with its mask",
        group="augmentation",
    )
    mixup: float = option(
        0.0, "MixUp Beta alpha (0: off; with cutmix: one of the two per batch)", group="augmentation", task="classify"
    )
    mix_prob: float = option(
        1.0,
        "classify: probability that a batch is mixed (cutmix/mixup); segment: that a tile gets a box (cutmix)",
        group="augmentation",
    )
    min_scale: float = option(
        0.75, "smallest random zoom (crop covers up to 1/scale of the tile)", group="augmentation", task="segment"
    )
    max_scale: float = option(1.25, "largest random zoom", group="augmentation", task="segment")
    color_jitter: float = option(
        0.0,
        "photometric jitter of training tiles: brightness, contrast and saturation each scaled by its own random "
        "factor in [1-s, 1+s] per tile (0: off)",
        group="augmentation",
        task="segment",
    )
    class_weights: str = option(
        "none", "none, inverse or median (frequency) loss weights", group="optimisation", task="segment"
    )
    ignore_unknown: bool = option(
        False, "leave class 6 (unknown) out of the loss", group="optimisation", task="segment"
    )
    loss: str = option(
        "ce",
        "ce, lovasz, dice, ce+lovasz or ce+dice (class weights apply to ce only)",
        group="optimisation",
        task="segment",
    )
    sampling: str = option(
        "none", "none, or rare (repeat-factor sampling of tiles with rare classes)", group="data", task="segment"
    )
    rare_classes: list[int] = option(
        list, "the classes sampling rare boosts (empty: every class)", group="data", task="segment"
    )
    repeat_threshold: float = option(
        1.0,
        "sampling rare: a class in fewer than this share of the tiles makes its tiles repeat",
        group="data",
        task="segment",
    )
    seed: int = option(0, "random seed (rank r uses seed + r for augmentation)", group="runtime")
    deterministic: bool = option(False, "bitwise-reproducible algorithms (slower)", group="runtime")
    device: str = option("auto", "auto, cpu, cuda or cuda:N", group="runtime")
    amp: str = option(
        "auto",
        "auto (bf16 on CUDA, off on CPU), bf16 (fp32 on a CPU without AVX-512/AMX, where bf16 is emulated and slower),"
        " fp16 or off",
        group="runtime",
    )
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
    snapshot_epochs: list[int] = option(list, "epochs whose val masks are saved", group="output", task="segment")
    snapshot_tiles: int = option(3, "validation tiles shown in snapshots", group="output", task="segment")
    snapshot_images: list[str] = option(
        list, "val tiles to snapshot, by file name (default: evenly spaced)", group="output", task="segment"
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


def field_names() -> list[str]:
    """All valid config keys."""
    return [f.name for f in dataclasses.fields(TrainConfig)]


def field_group(name: str) -> str:
    """The ``--help`` group of config key ``name`` (:data:`DEFAULT_GROUP` when its field names none)."""
    group = {f.name: f.metadata.get("group") for f in dataclasses.fields(TrainConfig)}.get(name)
    return group if group in GROUPS else DEFAULT_GROUP


def field_task(name: str) -> str | None:
    """The task config key ``name`` belongs to (None: both)."""
    task = {f.name: f.metadata.get("task") for f in dataclasses.fields(TrainConfig)}[name]
    return str(task) if task else None


def field_help() -> dict[str, str]:
    """The ``--help`` text of each config key; a key of one task says so first (``segment: ...``)."""
    return {
        f.name: (f"{f.metadata['task']}: " if f.metadata.get("task") else "") + f.metadata.get("help", "")
        for f in dataclasses.fields(TrainConfig)
    }


def task_defaults(task: str) -> dict[str, Any]:
    """Every key's default for ``task``: the dataclass default, then the task's own defaults."""
    return {**TrainConfig().to_dict(), **TASK_DEFAULTS[task], "task": task}
