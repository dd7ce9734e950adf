"""The task names and their torch-free facts: what every stage may know about a task by its name.

A leaf module (it imports nothing from fcnlab at run time), so the config, the model registry, the CLI's
parsers and the report read these facts without importing the task package or torch. The Task classes
themselves are in :mod:`fcnlab.tasks`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from fcnlab.config import TrainConfig

TASKS = ("classify", "segment")


@dataclass(frozen=True)
class TaskInfo:
    """What other stages need to know about a task, by name."""

    name: str
    label: str  # how reports title it
    metric: str  # the validation metric that selects best.pt (higher is better)
    dense: bool  # per-pixel logits at the input size (any input size), not one logit vector per image
    snapshots: bool  # training saves validation predictions at the snapshot epochs
    # scored per class by IoU and their mean (the course's mIoU: eval.json's per_class_iou, metrics.csv's
    # iou_<i> columns), not by accuracy alone; reports and comparisons show IoU tables then
    iou: bool
    # the homework's figures and printouts for one run, in the order the report shows them:
    # "val_acc" (the seed's Val Acc line), "tsne", "masks" (at the snapshot epochs), "course_miou"
    deliverables: tuple[str, ...]
    # the test-time augmentations its models take (fcnlab.infer.tta): a photograph is only mirror-symmetric,
    # a nadir tile has no "up"
    tta_modes: tuple[str, ...]


INFO = {
    "classify": TaskInfo(
        "classify",
        "P1 classification",
        "val_acc",
        dense=False,
        snapshots=False,
        iou=False,
        deliverables=("val_acc", "tsne"),
        tta_modes=("none", "flip", "flip-translate"),
    ),
    "segment": TaskInfo(
        "segment",
        "P2 segmentation",
        "val_miou",
        dense=True,
        snapshots=True,
        iou=True,
        deliverables=("masks", "course_miou"),
        tta_modes=("none", "flip", "d4"),
    ),
}


def task_info(name: str) -> TaskInfo:
    """The :class:`TaskInfo` of task ``name``; KeyError for an unknown name (configs are validated before)."""
    return INFO[name]


def eval_batch_size(cfg: TrainConfig, inference: bool = False) -> int:
    """Images per evaluation batch: ``cfg.eval_batch_size``, else twice ``batch_size`` (nothing is kept for a
    backward pass). ``inference`` (``<task> eval`` / ``predict`` on a checkpoint): dense models take
    ``batch_size`` there, as their test-time augmentation multiplies a batch's memory up to 8 times."""
    if cfg.eval_batch_size:
        return cfg.eval_batch_size
    return cfg.batch_size if inference and task_info(cfg.task).dense else 2 * cfg.batch_size
