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


def stream_images(
    pred: Predictor, files: Sequence[Path], labels: Sequence[int] | None, batch_size: int, workers: int, desc: str
) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """Yield ``(uint8 NCHW batch, labels, indices)`` of ``files``, decoded by ``workers`` processes, with a
    progress bar named ``desc``. Images of mixed sizes come one at a time."""
    import torch

    from fcnlab.data.streaming import ImageFiles, loader
    from fcnlab.runtime.progress import Progress

    with Progress(len(files), desc, unit="image") as progress:
        for images, targets, index in loader(
            ImageFiles(files, labels), batch_size, workers, pin=pred.device.type == "cuda"
        ):
            if isinstance(images, list):  # mixed sizes: one at a time
                for im, t, i in zip(images, targets, index, strict=True):
                    yield im[None], torch.tensor([t]), torch.tensor([i])
            else:
                yield images, targets, index
            progress.update(len(index))


def predict_labels_csv(
    pred: Predictor, files: Sequence[Path], out: Path, batch_size: int, workers: int, scores: bool = False
) -> np.ndarray:
    """Write ``out``, the course's ``image_id,label`` CSV of ``files`` (sorted by file name), atomically;
    return the labels in the order of ``files``. With ``scores`` two columns follow: ``confidence`` (the
    softmax probability of the label) and ``top5`` (the five likeliest labels, space-separated, likeliest
    first)."""
    labels = np.empty(len(files), dtype=np.int64)
    k = min(5, pred.cfg.num_classes)
    conf = np.empty(len(files), dtype=np.float64)
    top = np.empty((len(files), k), dtype=np.int64)
    for images, _, index in stream_images(pred, files, None, batch_size, workers, "predict"):
        logits = pred.logits(images)
        i = index.numpy()
        labels[i] = logits.argmax(1).cpu().numpy()
        if scores:
            probs, best = logits.softmax(1).topk(k, dim=1)
            conf[i], top[i] = probs[:, 0].cpu().numpy(), best.cpu().numpy()
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["image_id", "label"] + (["confidence", "top5"] if scores else []))
    for j in sorted(range(len(files)), key=lambda j: files[j].name):
        extra = [f"{conf[j]:.6f}", " ".join(str(int(c)) for c in top[j])] if scores else []
        w.writerow([files[j].name, int(labels[j]), *extra])
    atomic_write_text(out, buf.getvalue())
    return labels


def folder_features(
    pred: Predictor, files: Sequence[Path], labels: Sequence[int], batch_size: int, workers: int
) -> np.ndarray:
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


def check_mask_names(pairs: Sequence[tuple[Path, Path | None]]) -> None:
    """Refuse inputs of which two would be written as one mask (``a.jpg`` and ``a_sat.jpg``, ``a.jpg`` and
    ``a.png``): one prediction would silently replace the other. Call it before writing anything."""
    from fcnlab.data.images import name_clash
    from fcnlab.errors import DataError

    clash = name_clash((tile for tile, _ in pairs), mask_name)
    if clash:
        a, b, name = clash
        raise DataError(
            f"{a.parent}: {a.name} and {b.name} would both be predicted as {name}; rename one of "
            f"them or move it to another folder"
        )


def predict_mask_folder(
    pred: Predictor,
    pairs: Sequence[tuple[Path, Path | None]],
    out: Path,
    *,
    tile: int,
    workers: int,
    overlay: Path | None = None,
) -> int:
    """Write ``NNNN_mask.png`` (and ``NNNN_overlay.jpg`` into the folder ``overlay``, never beside the masks
    that ``fcnlab miou`` reads) into ``out`` for each image of
    ``pairs`` (from :func:`fcnlab.data.segmentation.pair_files`), one image at a time; images larger than
    ``tile`` are predicted in tiles. Return the number of masks written."""
    from PIL import Image

    from fcnlab.data.mask_codec import write_mask
    from fcnlab.data.streaming import TilePairs, loader
    from fcnlab.infer.tiling import predict_mask
    from fcnlab.report import viz
    from fcnlab.runtime.progress import track

    check_mask_names(pairs)
    n = 0
    stream = loader(TilePairs(pairs), 1, workers)
    for images, _, _, index in track(stream, len(pairs), "predict", unit="image"):
        path = pairs[int(index[0])][0]
        img = images[0].permute(1, 2, 0).numpy()
        ids = predict_mask(pred, img, tile=tile)
        write_mask(out / mask_name(path), ids)
        if overlay is not None:
            blended = viz.overlay(img, ids)
            name = mask_name(path).replace("_mask.png", "_overlay.jpg")
            atomic_save(overlay / name, partial(Image.fromarray(blended).save, format="JPEG", quality=90))
        n += 1
    return n
