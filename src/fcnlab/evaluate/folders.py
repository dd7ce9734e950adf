"""Evaluate a checkpoint on a labelled folder: the confusion matrix and accuracy of a classifier over
``{label}_{index}.png`` images (``classify eval``), the confusion matrix of a segmentation model over
``NNNN_sat.jpg`` + ``NNNN_mask.png`` pairs, large images in tiles (``segment eval``).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    from fcnlab.data.mask_codec import OffPaletteReport
    from fcnlab.infer.predictor import Predictor
    from fcnlab.tasks.metrics import ConfusionMatrix


def classification_confusion(pred: Predictor, files: Sequence[Path], labels: Sequence[int], batch_size: int,
                             workers: int) -> tuple[np.ndarray, float]:
    """Stream ``files`` through the classifier ``batch_size`` at a time; return the confusion matrix
    (rows: true class, columns: predicted) and the accuracy."""
    from fcnlab.infer.folders import stream_images
    from fcnlab.tasks.metrics import ConfusionMatrix

    conf = ConfusionMatrix(pred.cfg.num_classes, pred.device)
    for images, targets, _ in stream_images(pred, files, labels, batch_size, workers, "eval"):
        conf.update(targets.to(pred.device), pred.logits(images).argmax(1))
    mat = conf.mat.cpu().numpy()
    return mat, float(np.trace(mat) / max(mat.sum(), 1))


def segmentation_confusion(pred: Predictor, folder: str | Path, batch_size: int, workers: int, *,
                           tile: int = 1024) -> tuple[ConfusionMatrix, OffPaletteReport]:
    """Stream the pairs of ``folder`` through the model; return (ConfusionMatrix, off-palette report).

    Images up to ``tile`` pixels on each side go through the model whole, ``batch_size`` at a time.
    Larger ones (a 2448x2448 DeepGlobe original, a 10000x10000 mosaic) are predicted one by one in
    tiles by :func:`fcnlab.infer.tiling.predict_mask`, as ``segment predict`` does, and counted in bands of
    ``tile`` rows, so the model's memory is bounded by one tile, not by the image.
    """
    import torch

    from fcnlab.data.mask_codec import OffPaletteReport
    from fcnlab.data.segmentation import pair_files
    from fcnlab.data.streaming import TilePairs, loader
    from fcnlab.infer.tiling import check_tile, predict_mask
    from fcnlab.runtime.progress import Progress
    from fcnlab.tasks.metrics import ConfusionMatrix

    check_tile(tile)  # up front, not at the first large image after minutes of evaluation
    pairs = pair_files(folder)
    conf = ConfusionMatrix(pred.cfg.num_classes, pred.device)
    report = OffPaletteReport()
    progress = Progress(len(pairs), "eval", unit="image")
    for images, masks, n_off, index in loader(TilePairs(pairs), batch_size, workers,
                                              pin=pred.device.type == "cuda"):
        items = zip(images, masks, strict=True) if isinstance(images, list) else [(images, masks)]
        for im, m in items:
            im = im if im.dim() == 4 else im[None]
            m = m if m.dim() == 3 else m[None]
            if im.shape[-2] <= tile and im.shape[-1] <= tile:
                conf.update(m.to(pred.device), pred.logits(im).argmax(1))
                continue
            for one, truth in zip(im, m, strict=True):
                ids = torch.from_numpy(predict_mask(pred, one.permute(1, 2, 0).numpy(), tile=tile))
                for y in range(0, ids.shape[0], tile):
                    conf.update(truth[y:y + tile], ids[y:y + tile])
        progress.update(len(index))
        for n, i in zip(list(n_off), list(index), strict=True):
            if int(n):
                report.add(pairs[int(i)][1], int(n))  # type: ignore[arg-type]  # a mask was read
    progress.close()
    return conf, report
