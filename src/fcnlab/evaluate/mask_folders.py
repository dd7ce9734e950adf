"""The course's mIoU of a folder of predicted masks against a folder of label masks, fast and lean.

Masks are paired by name (``NNNN_mask.png`` in both folders, or ``NNNN.png`` for a prediction) and
streamed one pair at a time: each pair is decoded with Pillow, thresholded to the 3-bit codes
``4R + 2G + B`` and counted with one ``np.bincount`` of ``8 * label_code + pred_code`` into an 8x8
table, which is folded into the 7x7 class confusion matrix at the end (red, code 4, counts as
unknown as in the course). Memory does not grow with the number of masks, and a small thread
pool overlaps the decoding (Pillow and numpy release the GIL). torch is not imported.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

import numpy as np

from fcnlab.data.images import list_images
from fcnlab.data.mask_codec import (
    CODE_TO_CLASS,
    LOSSY_SUFFIXES,
    NUM_CLASSES,
    RED_CODE,
    OffPaletteReport,
    read_mask_codes,
)
from fcnlab.errors import DataError
from fcnlab.runtime.cores import usable_cores
from fcnlab.tasks.metrics import MiouResult, course_miou

R = TypeVar("R")

SHOW_FILES = 5
"""How many file names an error or warning lists."""


def mask_key(path: Path) -> str:
    """Pairing key of a mask file: its name without suffix and without a trailing ``_mask``."""
    stem = path.stem
    return stem[: -len("_mask")] if stem.endswith("_mask") else stem


def _names(paths: Iterable[Path]) -> str:
    names = [p.name for p in paths]
    more = f", ... (first {SHOW_FILES} of {len(names)})" if len(names) > SHOW_FILES else ""
    return ", ".join(names[:SHOW_FILES]) + more


def list_masks(folder: str | Path, what: str = "masks") -> dict[str, Path]:
    """Mask files of ``folder`` by pairing key: ``*.png`` and any ``.jpg`` but ``*_sat.jpg`` (refused later)."""
    files = list_images(folder, what)
    masks = [
        p
        for p in files
        if p.suffix.lower() == ".png" or (p.suffix.lower() in LOSSY_SUFFIXES and not p.stem.endswith("_sat"))
    ]
    if not masks:
        raise DataError(f"{folder}: folder holds no {what} (expected NNNN_mask.png files)")
    by_key: dict[str, Path] = {}
    for path in masks:
        other = by_key.setdefault(mask_key(path), path)
        if other is not path:
            raise DataError(f"{folder}: {other.name} and {path.name} are the same mask; keep only one")
    return by_key


def pair_masks(labels_dir: str | Path, pred_dir: str | Path) -> tuple[list[tuple[Path, Path]], list[str]]:
    """Pair label and prediction masks by name; return the pairs (sorted) and warning lines.

    Raises a DataError listing the label masks that have no prediction; predictions without a label
    only give a warning.
    """
    labels = list_masks(labels_dir, "label masks")
    preds = list_masks(pred_dir, "predicted masks")
    missing = [labels[k] for k in sorted(labels) if k not in preds]
    if missing:
        have = "label mask has" if len(missing) == 1 else "label masks have"
        raise DataError(
            f"{len(missing)} {have} no prediction in {pred_dir}: {_names(missing)}; "
            f"name each prediction like its label (NNNN_mask.png)"
        )
    warnings = []
    extra = [preds[k] for k in sorted(preds) if k not in labels]
    if extra:
        one = len(extra) == 1
        warnings.append(
            f"{len(extra)} prediction{'' if one else 's'} in {pred_dir} {'has' if one else 'have'} no "
            f"label mask in {labels_dir} and {'is' if one else 'are'} ignored: {_names(extra)}"
        )
    return [(labels[k], preds[k]) for k in sorted(labels)], warnings


def code_counts(label_path: Path, pred_path: Path) -> np.ndarray:
    """8x8 int64 counts of (label code, prediction code) pixels of one mask pair."""
    label = read_mask_codes(label_path)
    pred = read_mask_codes(pred_path)
    if label.shape != pred.shape:
        raise DataError(
            f"{pred_path}: prediction is {pred.shape[1]}x{pred.shape[0]} pixels but its label "
            f"{label_path} is {label.shape[1]}x{label.shape[0]}; predict at the label's size"
        )
    return np.bincount(((label << 3) | pred).reshape(-1), minlength=64).reshape(8, 8)


def fold_codes(counts: np.ndarray) -> np.ndarray:
    """Fold an 8x8 table of (label code, prediction code) counts into the 7x7 class confusion matrix."""
    mat = np.zeros((NUM_CLASSES, NUM_CLASSES), dtype=np.int64)
    np.add.at(mat, (CODE_TO_CLASS[:, None], CODE_TO_CLASS[None, :]), counts)
    return mat


def _imap_bounded(fn: Callable[..., R], items: Iterable[tuple], workers: int) -> Iterator[R]:
    """``fn(*item)`` for each item, in order, with at most ``2 * workers`` items in flight."""
    if workers <= 1:
        for item in items:
            yield fn(*item)
        return
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="fcnlab-miou") as pool:
        pending: deque[Future[R]] = deque()
        try:
            for item in items:
                pending.append(pool.submit(fn, *item))
                if len(pending) >= 2 * workers:
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()
        finally:
            for future in pending:
                future.cancel()


def default_workers() -> int:
    """Decoding threads: the usable CPU cores, at most 4."""
    return min(4, usable_cores())


def evaluate_masks(labels_dir: str | Path, pred_dir: str | Path, *, workers: int | None = None) -> MiouResult:
    """The course's mIoU of the masks in ``pred_dir`` against the label masks in ``labels_dir``.

    Equal to the course's ``mean_iou_evaluate.py`` (same thresholds, red as unknown, dataset-level
    IoU over classes 0-5). ``result.warnings`` lists ignored predictions, masks holding off-palette
    red pixels and absent classes. Bad input raises one DataError naming the file.
    """
    pairs, warnings = pair_masks(labels_dir, pred_dir)
    total = np.zeros((8, 8), dtype=np.int64)
    red = OffPaletteReport()
    labels_name, pred_name = Path(labels_dir).name, Path(pred_dir).name
    counts_iter = _imap_bounded(code_counts, pairs, default_workers() if workers is None else workers)
    for (label_path, pred_path), counts in zip(pairs, counts_iter, strict=True):
        total += counts
        red.add(f"{labels_name}/{label_path.name}", counts[RED_CODE, :].sum())
        red.add(f"{pred_name}/{pred_path.name}", counts[:, RED_CODE].sum())
    result = course_miou(fold_codes(total))
    summary = red.summary()
    result.warnings[:0] = warnings + ([summary] if summary else [])
    result.n_masks = len(pairs)
    return result
