"""Faithful re-implementation of the course's ``mean_iou_evaluate.py`` (DLCV 2020, HW2 P2).

Used only as a speed baseline for ``fcnlab miou`` and as an independent reference in the tests;
it keeps the course's algorithm on purpose: every ``*.png`` of a folder is decoded into one
``np.empty((n, 512, 512))`` float64 array through the ``4R + 2G + B`` codes of the channels
thresholded at 128 (red, code 4, counts as unknown), and the IoU of classes 0-5 is computed over
the whole set with one boolean comparison per class.

The course reads files with ``imageio.imread``; Pillow's ``np.asarray(Image.open(f))`` returns the
same array for the RGB PNG masks of this data set and is used when imageio is not installed.

Usage: ``python -m fcnlab.bench.course_mean_iou -g GT_DIR -p PRED_DIR``
"""

from __future__ import annotations

import argparse
import os

import numpy as np

try:  # the course's reader
    from imageio import imread as _imread
except ImportError:  # pragma: no cover - depends on the environment
    from PIL import Image

    def _imread(path: str) -> np.ndarray:
        return np.asarray(Image.open(path))


def read_masks(filepath: str) -> np.ndarray:
    """Read every ``*.png`` mask of ``filepath`` (sorted by name) into an ``(n, 512, 512)`` float64 array."""
    file_list = [file for file in os.listdir(filepath) if file.endswith(".png")]
    file_list.sort()
    n_masks = len(file_list)
    masks = np.empty((n_masks, 512, 512))

    for i, file in enumerate(file_list):
        mask = _imread(os.path.join(filepath, file))
        mask = (mask >= 128).astype(int)
        mask = 4 * mask[:, :, 0] + 2 * mask[:, :, 1] + mask[:, :, 2]
        masks[i, mask == 3] = 0  # (Cyan: 011) Urban land
        masks[i, mask == 6] = 1  # (Yellow: 110) Agriculture land
        masks[i, mask == 5] = 2  # (Purple: 101) Rangeland
        masks[i, mask == 2] = 3  # (Green: 010) Forest land
        masks[i, mask == 1] = 4  # (Blue: 001) Water
        masks[i, mask == 7] = 5  # (White: 111) Barren land
        masks[i, mask == 0] = 6  # (Black: 000) Unknown
        masks[i, mask == 4] = 6  # (Red: 100) Unknown

    return masks


def mean_iou_score(pred: np.ndarray, labels: np.ndarray) -> float:
    """Compute and print the mean IoU over the 6 scored classes, exactly as the course does."""
    mean_iou = 0
    for i in range(6):
        tp_fp = np.sum(pred == i)
        tp_fn = np.sum(labels == i)
        tp = np.sum((pred == i) * (labels == i))
        iou = tp / (tp_fp + tp_fn - tp)
        mean_iou += iou / 6
        print("class #%d : %1.5f" % (i, iou))  # noqa: UP031 - the course's own code
    print("\nmean_iou: %f\n" % mean_iou)  # noqa: UP031

    return mean_iou


def main(argv: list[str] | None = None) -> float:
    """Parse ``-g/--labels`` and ``-p/--pred``, read both folders and print the course's lines."""
    parser = argparse.ArgumentParser()
    parser.add_argument("-g", "--labels", help="ground truth masks directory", type=str)
    parser.add_argument("-p", "--pred", help="prediction masks directory", type=str)
    args = parser.parse_args(argv)

    pred = read_masks(args.pred)
    labels = read_masks(args.labels)

    return mean_iou_score(pred, labels)


if __name__ == "__main__":
    main()
