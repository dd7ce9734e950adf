"""Predict whole folders with a :class:`~fcnlab.infer.predictor.Predictor`: streamed batches of images,
the course's ``image_id,label`` CSV (``classify predict``), penultimate features (``classify tsne``) and a
folder of RGB masks (``segment predict``).

Images are decoded by worker processes a batch ahead (:mod:`fcnlab.data.streaming`), so memory is bounded
by the batch size, not by the folder.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator, Sequence
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from fcnlab.runtime.files import atomic_save, atomic_write_text

if TYPE_CHECKING:  # pragma: no cover
    import torch

    from fcnlab.infer.predictor import Predictor


def stream_images(pred: Predictor, files: Sequence[Path], labels: Sequence[int] | None, batch_size: int,
                  workers: int, desc: str) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """Yield ``(uint8 NCHW batch, labels, indices)`` of ``files``, decoded by ``workers`` processes, with a
    progress bar named ``desc``. Images of mixed sizes come one at a time."""
    import torch

    from fcnlab.data.streaming import ImageFiles, loader
    from fcnlab.runtime.progress import Progress

    with Progress(len(files), desc, unit="image") as progress:
        for images, targets, index in loader(ImageFiles(files, labels), batch_size, workers,
                                             pin=pred.device.type == "cuda"):
            if isinstance(images, list):  # mixed sizes: one at a time
                for im, t, i in zip(images, targets, index, strict=True):
                    yield im[None], torch.tensor([t]), torch.tensor([i])
            else:
                yield images, targets, index
            progress.update(len(index))


def predict_labels_csv(pred: Predictor, files: Sequence[Path], out: Path, batch_size: int,
                       workers: int) -> np.ndarray:
    """Write ``out``, the course's ``image_id,label`` CSV of ``files`` (sorted by file name), atomically;
    return the labels in the order of ``files``."""
    labels = np.empty(len(files), dtype=np.int64)
    for images, _, index in stream_images(pred, files, None, batch_size, workers, "predict"):
        labels[index.numpy()] = pred.logits(images).argmax(1).cpu().numpy()
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["image_id", "label"])
    for f, lab in sorted(zip(files, labels, strict=True), key=lambda t: t[0].name):
        w.writerow([f.name, int(lab)])
    atomic_write_text(out, buf.getvalue())
    return labels


def folder_features(pred: Predictor, files: Sequence[Path], labels: Sequence[int], batch_size: int,
                    workers: int) -> np.ndarray:
    """Penultimate-layer features ``(len(files), D)`` float32 of a classifier, in the order of ``files``."""
    from fcnlab.infer.predictor import penultimate

    feats = None
    for images, _, index in stream_images(pred, files, labels, batch_size, workers, "t-SNE features"):
        f = penultimate(pred, images).cpu().numpy()
        if feats is None:
            feats = np.empty((len(files), f.shape[1]), dtype=np.float32)
        feats[index.numpy()] = f
    assert feats is not None
    return feats


def mask_name(tile: Path) -> str:
    """``0001_sat.jpg`` -> ``0001_mask.png``; any other ``name.ext`` -> ``name_mask.png``."""
    stem = tile.stem[:-4] if tile.stem.endswith("_sat") else tile.stem
    return f"{stem}_mask.png"


def predict_mask_folder(pred: Predictor, pairs: Sequence[tuple[Path, Path | None]], out: Path, *, tile: int,
                        workers: int, overlay: bool = False) -> int:
    """Write ``NNNN_mask.png`` (and with ``overlay`` ``NNNN_overlay.jpg``) into ``out`` for each image of
    ``pairs`` (from :func:`fcnlab.data.segmentation.pair_files`), one image at a time; images larger than
    ``tile`` are predicted in tiles. Return the number of masks written."""
    from PIL import Image

    from fcnlab.data.mask_codec import write_mask
    from fcnlab.data.streaming import TilePairs, loader
    from fcnlab.infer.tiling import predict_mask
    from fcnlab.report import viz
    from fcnlab.runtime.progress import track

    n = 0
    stream = loader(TilePairs(pairs), 1, workers)
    for images, _, _, index in track(stream, len(pairs), "predict", unit="image"):
        path = pairs[int(index[0])][0]
        img = images[0].permute(1, 2, 0).numpy()
        ids = predict_mask(pred, img, tile=tile)
        write_mask(out / mask_name(path), ids)
        if overlay:
            blended = viz.overlay(img, ids)
            name = mask_name(path).replace("_mask.png", "_overlay.jpg")
            atomic_save(out / name, partial(Image.fromarray(blended).save, format="JPEG", quality=90))
        n += 1
    return n
