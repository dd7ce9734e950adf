"""Per-image tables an evaluation writes beside its ``eval.json``, so a user can check the images one by one."""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Sequence

import numpy as np

from fcnlab.data.mask_codec import SCORED_CLASSES
from fcnlab.tasks.metrics import accuracy, iou_per_class


def _cell(value: float) -> str:
    return "" if math.isnan(value) else f"{value:.6f}"


def per_tile_csv(tiles: Sequence[tuple[str, np.ndarray]]) -> str:
    """``per_tile.csv`` of a segmentation evaluation: per tile its pixels, pixel accuracy, the IoU of classes
    0-5 (empty where the class is in neither the tile's label nor its prediction) and their mean over the
    classes present."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["tile", "pixels", "pixel_accuracy", *[f"iou_{i}" for i in range(SCORED_CLASSES)], "mean_iou_present"])
    for name, mat in tiles:
        ious = iou_per_class(mat)[:SCORED_CLASSES]
        present = ious[~np.isnan(ious)]
        w.writerow(
            [
                name,
                int(mat.sum()),
                _cell(accuracy(mat)),
                *[_cell(float(v)) for v in ious],
                _cell(float(present.mean()) if present.size else math.nan),
            ]
        )
    return buf.getvalue()
