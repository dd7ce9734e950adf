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
    import torch

    from fcnlab.data.mask_codec import OffPaletteReport
    from fcnlab.infer.predictor import Predictor
    from fcnlab.tasks.metrics import ConfusionMatrix


def classification_confusion(
    pred: Predictor, files: Sequence[Path], labels: Sequence[int], batch_size: int, workers: int, top: int = 5
) -> tuple[np.ndarray, float, float]:
    """Stream ``files`` through the classifier ``batch_size`` at a time; return the confusion matrix
    (rows: true class, columns: predicted), the accuracy and the top-``top`` accuracy (the true class among the
    ``top`` highest logits)."""
    import torch

    from fcnlab.infer.folders import stream_images
    from fcnlab.tasks.metrics import ConfusionMatrix

    conf = ConfusionMatrix(pred.cfg.num_classes, pred.device)
    in_top = torch.zeros((), dtype=torch.int64, device=pred.device)
    k = min(top, pred.cfg.num_classes)
    for images, targets, _ in stream_images(pred, files, labels, batch_size, workers, "eval"):
        logits, targets = pred.logits(images), targets.to(pred.device)
        conf.update(targets, logits.argmax(1))
        in_top += (logits.topk(k, dim=1).indices == targets[:, None]).any(1).sum()
    mat = conf.mat.cpu().numpy()
    total = max(mat.sum(), 1)
    return mat, float(np.trace(mat) / total), float(in_top.item() / total)


def image_counts(truth: torch.Tensor, ids: torch.Tensor, n: int) -> np.ndarray:
    """``(B, n, n)`` int64 confusion counts of each image of a batch (rows: truth, columns: prediction);
    values outside ``[0, n)`` are not counted (the data set's matrix reports them)."""
    import torch

    b = truth.shape[0]
    t, p = truth.reshape(b, -1).to(ids.device, torch.int64), ids.reshape(b, -1).to(torch.int64)
    valid = (t >= 0) & (t < n) & (p >= 0) & (p < n)
    index = torch.arange(b, device=ids.device)[:, None] * (n * n) + n * t + p
    counts = torch.bincount(index[valid], minlength=b * n * n)
    return counts.reshape(b, n, n).cpu().numpy()


def segmentation_confusion(
    pred: Predictor,
    folder: str | Path,
    batch_size: int,
    workers: int,
    *,
    tile: int = 1024,
    per_image: list[tuple[str, np.ndarray]] | None = None,
) -> tuple[ConfusionMatrix, OffPaletteReport]:
    """Stream the pairs of ``folder`` through the model; return (ConfusionMatrix, off-palette report).

    Images up to ``tile`` pixels on each side go through the model whole, ``batch_size`` at a time.
    Larger ones (a 2448x2448 DeepGlobe original, a 10000x10000 mosaic) are predicted one by one in
    tiles by :func:`fcnlab.infer.tiling.predict_mask`, as ``segment predict`` does, and counted in bands of
    ``tile`` rows, so the model's memory is bounded by one tile, not by the image. With ``per_image`` (a
    list) each image's own confusion counts are appended to it with the tile's file name, in folder order.
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
    n = pred.cfg.num_classes
    conf = ConfusionMatrix(n, pred.device)
    report = OffPaletteReport()
    progress = Progress(len(pairs), "eval", unit="image")
    found: dict[int, np.ndarray] = {}
    for images, masks, n_off, index in loader(TilePairs(pairs), batch_size, workers, pin=pred.device.type == "cuda"):
        items = zip(images, masks, strict=True) if isinstance(images, list) else [(images, masks)]
        counts: list[np.ndarray] = []
        for im, m in items:
            im = im if im.dim() == 4 else im[None]
            m = m if m.dim() == 3 else m[None]
            if im.shape[-2] <= tile and im.shape[-1] <= tile:
                ids = pred.logits(im).argmax(1)
                conf.update(m.to(pred.device), ids)
                if per_image is not None:
                    counts += list(image_counts(m, ids, n))
                continue
            for one, truth in zip(im, m, strict=True):
                ids = torch.from_numpy(predict_mask(pred, one.permute(1, 2, 0).numpy(), tile=tile))
                total = np.zeros((n, n), dtype=np.int64)
                for y in range(0, ids.shape[0], tile):
                    conf.update(truth[y : y + tile], ids[y : y + tile])
                    if per_image is not None:
                        total += image_counts(truth[None, y : y + tile], ids[None, y : y + tile], n)[0]
                counts.append(total)
        progress.update(len(index))
        for i, c in zip(list(index), counts, strict=False):
            found[int(i)] = c
        for k, i in zip(list(n_off), list(index), strict=True):
            if int(k):
                report.add(pairs[int(i)][1], int(k))  # type: ignore[arg-type]  # a mask was read
    progress.close()
    if per_image is not None:
        per_image += [(pairs[i][0].name, found[i]) for i in sorted(found)]
    return conf, report
