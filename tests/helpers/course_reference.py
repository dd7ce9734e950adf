"""References the metric tests compare fcnlab with: the course's ``mean_iou_evaluate.py`` (the benchmark's
faithful copy) and a plain numpy confusion matrix."""

from __future__ import annotations

from types import ModuleType

import numpy as np


def load_course_reference() -> ModuleType:
    """The course's evaluator as the benchmark ships it (:mod:`fcnlab.bench.course_mean_iou`)."""
    from fcnlab.bench import course_mean_iou

    return course_mean_iou


def confusion_counts(target: np.ndarray, pred: np.ndarray, num_classes: int) -> np.ndarray:
    """numpy twin of ``fcnlab.tasks.metrics.ConfusionMatrix.update``: the ``n x n`` int64 counts of two id arrays."""
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
