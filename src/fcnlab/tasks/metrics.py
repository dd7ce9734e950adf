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

_BIG = 2**62  # start of the running minimum (and, negated, maximum) of the deferred range check


class ConfusionMatrix:
    """An ``n x n`` int64 confusion matrix accumulated on a torch device (rows = truth, cols = prediction).

    ``update`` counts ``n * target + pred`` on the tensors' device. Labels equal to ``ignore_index`` (e.g.
    255) are skipped; any other label or prediction outside ``[0, n)`` raises ValueError naming the value.

    On the CPU the values are checked at once and a failing update adds nothing. On a GPU
    (``deferred_checks``, the default there) ``update`` never waits for the device: the counts come from
    ``torch.histc`` over a fixed range (``torch.bincount`` reads the maximum back to size its output, a
    host sync per batch), the running minimum and maximum of the values stay on the device, and the
    ValueError is raised when the counts are read (:attr:`mat`, :meth:`numpy`); out-of-range pixels are
    not counted.
    """

    def __init__(
        self,
        num_classes: int,
        device: str | torch.device = "cpu",
        ignore_index: int | None = None,
        deferred_checks: bool | None = None,
    ):
        import torch

        if num_classes < 1:
            raise ValueError(f"num_classes must be >= 1, got {num_classes}")
        self.num_classes = int(num_classes)
        self.ignore_index = ignore_index
        self._mat = torch.zeros((self.num_classes, self.num_classes), dtype=torch.int64, device=device)
        self.deferred_checks = self._mat.device.type != "cpu" if deferred_checks is None else bool(deferred_checks)
        # running (label, prediction) minimum and maximum, for the deferred range check
        self._lo = torch.full((2,), _BIG, dtype=torch.int64, device=device)
        self._hi = torch.full((2,), -_BIG, dtype=torch.int64, device=device)
        self._histc = True  # torch.histc on integer tensors (CUDA); falls back to bincount if unsupported

    @property
    def mat(self) -> torch.Tensor:
        """The ``n x n`` int64 counts; raises the deferred ValueError if an update held a bad value."""
        if self.deferred_checks:
            lo, hi = self._lo.tolist(), self._hi.tolist()  # one host sync, when the result is read
            for i, what in enumerate(("label", "prediction")):
                self._raise_if_outside(lo[i], hi[i], what)
        return self._mat

    def reset(self) -> None:
        """Set every count to zero."""
        self._mat.zero_()
        self._lo.fill_(_BIG)
        self._hi.fill_(-_BIG)

    def _raise_if_outside(self, lo: int, hi: int, what: str) -> None:
        if lo < 0 or hi >= self.num_classes:
            bad = lo if lo < 0 else hi
            hint = "" if self.ignore_index is None or what != "label" else f" (ignore_index is {self.ignore_index})"
            raise ValueError(f"{what} value {bad} is outside [0, {self.num_classes}){hint}")

    def _check_range(self, values: torch.Tensor, what: str) -> None:
        import torch

        lo, hi = (int(v) for v in torch.aminmax(values))
        self._raise_if_outside(lo, hi, what)

    def _count(self, index: torch.Tensor) -> torch.Tensor:
        """Counts of ``index`` values in ``[0, n * n)``; negative entries are dropped. No host sync on CUDA."""
        import torch

        bins = self.num_classes**2
        if self._histc and index.device.type == "cuda" and not torch.are_deterministic_algorithms_enabled():
            try:  # fixed range: no read-back of the maximum; int64 in, exact int64 counts out
                return torch.histc(index, bins=bins, min=0, max=bins).to(torch.int64)
            except (RuntimeError, NotImplementedError):
                self._histc = False
        return torch.bincount(index + 1, minlength=bins + 1)[1 : bins + 1]

    def update(self, target: torch.Tensor, pred: torch.Tensor) -> None:
        """Add the pixels (or samples) of integer tensors ``target`` and ``pred`` of the same shape."""
        import torch

        if target.shape != pred.shape:
            raise ValueError(f"target shape {tuple(target.shape)} differs from prediction shape {tuple(pred.shape)}")
        if target.is_floating_point() or pred.is_floating_point():
            raise ValueError("target and prediction must be integer class ids (use argmax over the logits)")
        to_gpu = self._mat.device.type == "cuda"  # non-blocking host-to-device copies only
        target = target.reshape(-1).to(device=self._mat.device, dtype=torch.int64, non_blocking=to_gpu)
        pred = pred.reshape(-1).to(device=self._mat.device, dtype=torch.int64, non_blocking=to_gpu)
        n = self.num_classes
        if self.deferred_checks:
            if target.numel() == 0:
                return
            keep = None if self.ignore_index is None else target != self.ignore_index
            if keep is not None:  # ignored pixels pass the check and are not counted
                target, pred = torch.where(keep, target, 0), torch.where(keep, pred, 0)
            lo_t, hi_t = torch.aminmax(target)
            lo_p, hi_p = torch.aminmax(pred)
            torch.minimum(self._lo, torch.stack([lo_t, lo_p]), out=self._lo)
            torch.maximum(self._hi, torch.stack([hi_t, hi_p]), out=self._hi)
            valid = (target >= 0) & (target < n) & (pred >= 0) & (pred < n)
            if keep is not None:
                valid &= keep
            self._mat.view(-1).add_(self._count(torch.where(valid, n * target + pred, -1)))
            return
        if self.ignore_index is not None:
            keep = target != self.ignore_index
            target, pred = target[keep], pred[keep]
        if target.numel() == 0:
            return
        self._check_range(target, "label")
        self._check_range(pred, "prediction")
        counts = torch.bincount(n * target + pred, minlength=n * n)
        self._mat += counts.reshape(n, n)

    def all_reduce(self) -> None:
        """Sum the matrices of all ranks in place (torch.distributed); a no-op when it is not initialised.

        Call it once, after the last ``update`` of an evaluation: a second call would count twice. With
        deferred checks the value ranges are reduced too, so every rank raises the same error.
        """
        import torch.distributed as dist

        if dist.is_available() and dist.is_initialized():
            dist.all_reduce(self._mat, op=dist.ReduceOp.SUM)
            if self.deferred_checks:
                dist.all_reduce(self._lo, op=dist.ReduceOp.MIN)
                dist.all_reduce(self._hi, op=dist.ReduceOp.MAX)

    def numpy(self) -> np.ndarray:
        """The counts as an int64 numpy array on the CPU."""
        return self.mat.detach().cpu().numpy()


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


def mean_class_accuracy(mat: Any, classes: int | None = None) -> float:
    """Mean over the first ``classes`` classes (all by default) of their accuracy (:func:`per_class_accuracy`),
    classes without samples left out (nan when none has any): mmseg's ``mAcc``."""
    accs = per_class_accuracy(mat)[:classes]
    present = accs[~np.isnan(accs)]
    return float(present.mean()) if present.size else math.nan


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
            f"{result.mean_present:.6f}"
        )
    return result


def format_course_lines(result: MiouResult) -> str:
    """The course's printout: ``class #i : %1.5f`` per class, a blank line, then ``mean_iou: %f``."""
    lines = [f"class #{i:d} : {v:1.5f}" for i, v in enumerate(result.per_class)]
    return "\n".join(lines) + f"\n\nmean_iou: {result.mean:f}"
