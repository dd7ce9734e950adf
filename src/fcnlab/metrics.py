"""Confusion matrices and the metrics derived from them, with the course's mIoU definition.

All metrics are computed from one confusion matrix ``mat`` (rows = ground truth, columns =
prediction) accumulated over a whole data set, never averaged per image.

The course's mIoU (:func:`course_miou`) is the mean over classes 0-5 of
``IoU_i = C[i, i] / (row_i + col_i - C[i, i])`` of the 7x7 matrix: pixels labelled *unknown* (6)
still count as false positives of the class predicted there, and predictions of *unknown* count as
false negatives. When a class is absent from both labels and predictions its IoU is 0/0: the course
prints ``nan`` for it and for the mean; fcnlab reports the same numbers (so that they stay
comparable) and adds a warning naming the absent class and the mean over the present classes
(:attr:`MiouResult.mean_present`).

torch is imported only by :class:`ConfusionMatrix`, so that the mask evaluator stays light.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from fcnlab.data.mask_codec import CLASS_NAMES, SCORED_CLASSES

if TYPE_CHECKING:  # pragma: no cover
    import torch


class ConfusionMatrix:
    """An ``n x n`` int64 confusion matrix accumulated on a torch device (rows = truth, cols = prediction).

    ``update`` uses ``torch.bincount(n * target + pred, minlength=n * n)`` on the tensors' device. Labels
    equal to ``ignore_index`` (e.g. 255) are skipped; any other label or prediction outside ``[0, n)``
    raises ValueError naming the value.
    """

    def __init__(self, num_classes: int, device: str | torch.device = "cpu", ignore_index: int | None = None):
        import torch

        if num_classes < 1:
            raise ValueError(f"num_classes must be >= 1, got {num_classes}")
        self.num_classes = int(num_classes)
        self.ignore_index = ignore_index
        self.mat = torch.zeros((self.num_classes, self.num_classes), dtype=torch.int64, device=device)

    def reset(self) -> None:
        """Set every count to zero."""
        self.mat.zero_()

    def _check_range(self, values: torch.Tensor, what: str) -> None:
        import torch

        lo, hi = (int(v) for v in torch.aminmax(values))
        if lo < 0 or hi >= self.num_classes:
            bad = lo if lo < 0 else hi
            hint = "" if self.ignore_index is None or what != "label" else f" (ignore_index is {self.ignore_index})"
            raise ValueError(f"{what} value {bad} is outside [0, {self.num_classes}){hint}")

    def update(self, target: torch.Tensor, pred: torch.Tensor) -> None:
        """Add the pixels (or samples) of integer tensors ``target`` and ``pred`` of the same shape."""
        import torch

        if target.shape != pred.shape:
            raise ValueError(f"target shape {tuple(target.shape)} differs from prediction shape {tuple(pred.shape)}")
        if target.is_floating_point() or pred.is_floating_point():
            raise ValueError("target and prediction must be integer class ids (use argmax over the logits)")
        target = target.reshape(-1).to(device=self.mat.device, dtype=torch.int64)
        pred = pred.reshape(-1).to(device=self.mat.device, dtype=torch.int64)
        if self.ignore_index is not None:
            keep = target != self.ignore_index
            target, pred = target[keep], pred[keep]
        if target.numel() == 0:
            return
        self._check_range(target, "label")
        self._check_range(pred, "prediction")
        n = self.num_classes
        counts = torch.bincount(n * target + pred, minlength=n * n)
        self.mat += counts.reshape(n, n)

    def all_reduce(self) -> None:
        """Sum the matrices of all ranks (torch.distributed); a no-op when it is not initialised."""
        import torch.distributed as dist

        if dist.is_available() and dist.is_initialized():
            dist.all_reduce(self.mat, op=dist.ReduceOp.SUM)

    def numpy(self) -> np.ndarray:
        """The counts as an int64 numpy array on the CPU."""
        return self.mat.detach().cpu().numpy()


def confusion_counts(target: np.ndarray, pred: np.ndarray, num_classes: int) -> np.ndarray:
    """numpy twin of :meth:`ConfusionMatrix.update`: the ``n x n`` int64 counts of two id arrays."""
    target = np.asarray(target).reshape(-1).astype(np.int64, copy=False)
    pred = np.asarray(pred).reshape(-1).astype(np.int64, copy=False)
    if target.shape != pred.shape:
        raise ValueError(f"target has {target.size} values but prediction has {pred.size}")
    for values, what in ((target, "label"), (pred, "prediction")):
        if values.size and (values.min() < 0 or values.max() >= num_classes):
            bad = values[(values < 0) | (values >= num_classes)][0]
            raise ValueError(f"{what} value {bad} is outside [0, {num_classes})")
    n = num_classes
    return np.bincount(n * target + pred, minlength=n * n).reshape(n, n)


def _as_numpy(mat: Any) -> np.ndarray:
    if hasattr(mat, "detach"):  # torch tensor
        mat = mat.detach().cpu().numpy()
    mat = np.asarray(mat)
    if mat.ndim != 2 or mat.shape[0] != mat.shape[1]:
        raise ValueError(f"a confusion matrix must be square, got shape {mat.shape}")
    return mat


def iou_per_class(mat: Any) -> np.ndarray:
    """IoU of every class, ``TP / (TP + FP + FN)``; nan where a class is absent from labels and predictions."""
    mat = _as_numpy(mat).astype(np.float64)
    tp = np.diag(mat)
    union = mat.sum(axis=1) + mat.sum(axis=0) - tp
    with np.errstate(divide="ignore", invalid="ignore"):
        return tp / union


def accuracy(mat: Any) -> float:
    """Overall accuracy: correct / total (nan for an empty matrix)."""
    mat = _as_numpy(mat)
    total = mat.sum()
    return float(np.trace(mat) / total) if total else math.nan


def per_class_accuracy(mat: Any) -> np.ndarray:
    """Recall of every class: ``C[i, i] / row_i`` (nan for a class with no samples)."""
    mat = _as_numpy(mat).astype(np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.diag(mat) / mat.sum(axis=1)


@dataclass
class MiouResult:
    """The course's mIoU of a set of masks.

    ``per_class`` holds the IoU of classes 0-5, ``mean`` their mean as the course computes it (nan when a
    class is absent), ``absent`` the classes missing from both labels and predictions, and
    ``warnings`` one line per thing the user should know (absent classes, off-palette pixels,
    ignored files).
    """

    per_class: list[float]
    mean: float
    absent: list[int] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    confusion: np.ndarray | None = field(default=None, repr=False, compare=False)
    n_masks: int | None = None

    @property
    def mean_present(self) -> float:
        """Mean IoU over the classes present in labels or predictions (nan when none is)."""
        present = [v for v in self.per_class if not math.isnan(v)]
        return sum(present) / len(present) if present else math.nan

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (nan written as null)."""

        def num(v: float) -> float | None:
            return None if math.isnan(v) else float(v)

        return {
            "mean_iou": num(self.mean),
            "mean_iou_present": num(self.mean_present),
            "per_class": {CLASS_NAMES[i]: num(v) for i, v in enumerate(self.per_class)},
            "absent": [CLASS_NAMES[i] for i in self.absent],
            "warnings": list(self.warnings),
            "n_masks": self.n_masks,
            "confusion": None if self.confusion is None else self.confusion.tolist(),
            "class_names": list(CLASS_NAMES),
        }


def course_miou(mat: Any) -> MiouResult:
    """The course's mIoU from a 7x7 (or larger) confusion matrix: mean IoU of classes 0-5.

    Unknown-labelled pixels count as false positives of the predicted class, exactly as the course's
    ``mean_iou_evaluate.py``; the mean is summed in the course's order (``mean += iou / 6``), so it
    is bit-for-bit the course's value.
    """
    counts = _as_numpy(mat)
    if counts.shape[0] < SCORED_CLASSES:
        raise ValueError(f"the course's mIoU needs at least {SCORED_CLASSES} classes, got {counts.shape[0]}")
    ious = iou_per_class(counts)[:SCORED_CLASSES]
    per_class = [float(v) for v in ious]
    mean = 0.0
    for v in per_class:
        mean += v / SCORED_CLASSES
    absent = [i for i, v in enumerate(per_class) if math.isnan(v)]
    result = MiouResult(per_class=per_class, mean=mean, absent=absent, confusion=counts.astype(np.int64))
    if absent:
        names = ", ".join(f"{i} ({CLASS_NAMES[i]})" for i in absent)
        plural = "es" if len(absent) > 1 else ""
        result.warnings.append(
            f"class{plural} {names} absent from both labels and predictions: IoU 0/0 is nan and so is mean_iou, "
            f"as in the course's script; mean over the {SCORED_CLASSES - len(absent)} present classes: "
            f"{result.mean_present:.6f}")
    return result


def format_course_lines(result: MiouResult) -> str:
    """The course's printout: ``class #i : %1.5f`` per class, a blank line, then ``mean_iou: %f``."""
    lines = [f"class #{i:d} : {v:1.5f}" for i, v in enumerate(result.per_class)]
    return "\n".join(lines) + f"\n\nmean_iou: {result.mean:f}"
