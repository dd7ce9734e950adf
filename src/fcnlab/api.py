"""The Python API: the command-line workflow as functions (re-exported lazily by :mod:`fcnlab`).

>>> import fcnlab
>>> summary = fcnlab.train("p2_fcn8s_resnet34", "runs/fcn8s", data="p2_data/train",
...                        val="p2_data/validation", pretrained=False)                # doctest: +SKIP
>>> masks = fcnlab.predict_masks("runs/fcn8s", "p2_data/validation")                  # doctest: +SKIP
>>> fcnlab.evaluate_masks("p2_data/validation", "pred_masks").mean                   # doctest: +SKIP

``train`` = ``fcnlab classify|segment train``, ``load_checkpoint`` + ``predict_masks`` / ``predict_labels`` =
``segment predict`` / ``classify predict``, ``evaluate_masks`` = ``fcnlab miou``, ``compare_runs`` =
``fcnlab compare``, ``write_report`` = ``fcnlab report``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from fcnlab.errors import ConfigError, DataError

if TYPE_CHECKING:  # pragma: no cover
    from torch import nn

    from fcnlab.config import TrainConfig
    from fcnlab.infer.predictor import Predictor
    from fcnlab.report import ReportResult
    from fcnlab.report.compare import Comparison
    from fcnlab.tasks.metrics import MiouResult

ImagesArg = str | Path | np.ndarray | Sequence[np.ndarray | str | Path]


def build_model(
    name: str,
    num_classes: int | None = None,
    *,
    pretrained: bool = False,
    weights: str | Path | None = None,
    **kwargs: Any,
) -> nn.Module:
    """Build a registered model (``vgg16_bn``, ``resnet18``, ``fcn32s_vgg16``, ``fcn8s_resnet34``, ...).

    ``num_classes`` defaults to the course's: 50 for classifiers, 7 for segmentation models. ``pretrained``
    loads torchvision's ImageNet weights into the backbone, ``weights`` a local torchvision state dict;
    other keyword arguments go to the builder (e.g. ``learn_upsampling=True``). See
    :func:`fcnlab.models.list_models` for the names.
    """
    from fcnlab.config import task_defaults
    from fcnlab.models import build_model as _build
    from fcnlab.models import model_task

    if num_classes is None:  # the task's default (the course's class count)
        num_classes = task_defaults(model_task(name))["num_classes"]
    return _build(name, num_classes, pretrained=pretrained, weights=weights, **kwargs)


def load_checkpoint(
    path: str | Path, device: str = "auto", *, fold: bool = True, tta: str = "none", scales: Sequence[float] = (1.0,)
) -> Predictor:
    """Restore a checkpoint file or run folder (its ``best.pt``) for inference.

    ``tta``: test-time augmentation, ``none``, ``flip`` or (segmentation) ``d4``; ``scales`` (segmentation):
    input scales averaged too, e.g. ``(0.75, 1, 1.25)``. See :mod:`fcnlab.infer.tta`.

    Returns a :class:`fcnlab.infer.predictor.Predictor`: ``.model`` (in eval mode on ``.device``; VGG classifiers
    at 32x32 with their exact folded head unless ``fold=False``), ``.ckpt`` (the checkpoint dict: epoch,
    metrics, config ...), ``.cfg`` (the training config) and ``.logits(uint8 NCHW batch)``.
    """
    from fcnlab.infer.predictor import load_predictor

    return load_predictor(path, device, fold=fold, tta=tta, scales=tuple(scales))


def _predictor(
    ckpt: Any, device: str, task: str, tta: str | None = None, scales: Sequence[float] | None = None
) -> Predictor:
    """A Predictor for ``task``: ``ckpt`` itself when it is one (with its TTA unless ``tta``/``scales`` are
    given), else the checkpoint restored with ``tta`` and ``scales``."""
    from fcnlab.infer.predictor import Predictor, load_predictor, make_predictor

    if isinstance(ckpt, Predictor):
        if ckpt.cfg.task != task:
            raise ConfigError(f"checkpoint {ckpt.path} is a {ckpt.cfg.task} model, not {task}")
        if tta is None and scales is None:
            return ckpt
        from fcnlab.infer.tta import ClassificationTTA, SegmentationTTA, check_tta
        from fcnlab.tasks import task_info

        tta = ckpt.tta if tta is None else tta
        scales = ckpt.scales if scales is None else tuple(scales)
        check_tta(task_info(task).dense, tta, scales)
        base = ckpt.model.model if isinstance(ckpt.model, (ClassificationTTA, SegmentationTTA)) else ckpt.model
        return make_predictor(
            base,
            ckpt.cfg,
            ckpt.device,
            ckpt.amp,
            fold=False,
            fuse=False,
            ckpt=ckpt.ckpt,
            path=ckpt.path,
            tta=tta,
            scales=scales,
        )
    return load_predictor(ckpt, device, task=task, tta=tta or "none", scales=tuple(scales or (1.0,)))


def _image_list(images: ImagesArg, tiles: bool) -> list[tuple[str, Any]]:
    """``(name, array-or-path)`` items of a folder, one array, a batch array or a list of arrays/paths."""
    if isinstance(images, (str, Path)):
        folder = Path(images)
        if tiles:
            from fcnlab.data.segmentation import pair_files

            return [(str(p), p) for p, _ in pair_files(folder, need_masks=False)]
        from fcnlab.data.images import list_images

        return [(str(p), p) for p in list_images(folder)]
    if isinstance(images, np.ndarray):
        images = [images] if images.ndim == 3 else list(images)
    return [(str(item) if isinstance(item, (str, Path)) else f"images[{i}]", item) for i, item in enumerate(images)]


def _rgb(name: str, item: Any) -> np.ndarray:
    """A ``(H, W, 3)`` uint8 array from an array or an image file; DataError naming the item otherwise."""
    if isinstance(item, (str, Path)):
        from fcnlab.data.images import read_rgb

        return read_rgb(item)
    array = np.asarray(item)
    if array.ndim != 3 or array.shape[2] != 3 or array.dtype != np.uint8:
        raise DataError(
            f"{name}: expected an (H, W, 3) uint8 RGB array, got shape {array.shape} dtype "
            f"{array.dtype} (convert with np.asarray(PIL.Image.open(f).convert('RGB')))"
        )
    return array


def predict_masks(
    ckpt: str | Path | Predictor,
    images: ImagesArg,
    *,
    device: str = "auto",
    tile: int = 1024,
    tta: str | None = None,
    scales: Sequence[float] | None = None,
) -> list[np.ndarray]:
    """Class-id masks ``(H, W)`` uint8 (0-6) for RGB images, like ``fcnlab segment predict``.

    ``ckpt`` is a checkpoint file, a run folder or a :func:`load_checkpoint` result; ``images`` a folder
    (every image but ``*_mask`` files, in sorted file-name order), a list of ``(H, W, 3)`` uint8 arrays or
    image paths, or one such array. Images of any size work; those larger than ``tile`` pixels are
    predicted in tiles. Turn a mask into the course's RGB colours with
    :func:`fcnlab.data.mask_codec.class_to_rgb`. ``tta`` (``none``, ``flip``, ``d4``) and ``scales`` average
    the softmax over mirrored/rotated and rescaled views (default: none, or a given Predictor's own).
    """
    from fcnlab.infer.tiling import predict_mask

    pred = _predictor(ckpt, device, "segment", tta, scales)
    return [predict_mask(pred, _rgb(name, item), tile=tile) for name, item in _image_list(images, tiles=True)]


def predict_labels(
    ckpt: str | Path | Predictor,
    images: ImagesArg,
    *,
    device: str = "auto",
    batch_size: int = 256,
    tta: str | None = None,
) -> np.ndarray:
    """Class labels (int64) of RGB images, like ``fcnlab classify predict``.

    ``images`` is a folder (sorted file names), a list of ``(H, W, 3)`` uint8 arrays or paths, or an
    ``(N, H, W, 3)`` batch. Images of one size run in batches of ``batch_size``. ``tta="flip"`` averages
    the logits of each image and its mirror (default: none, or a given Predictor's own).
    """
    import torch

    if batch_size < 1:
        raise ConfigError(f"batch_size must be >= 1, got {batch_size}")
    pred = _predictor(ckpt, device, "classify", tta)
    arrays = [_rgb(name, item) for name, item in _image_list(images, tiles=False)]
    labels = np.empty(len(arrays), dtype=np.int64)
    start = 0
    while start < len(arrays):
        end = start + 1
        while end < len(arrays) and end - start < batch_size and arrays[end].shape == arrays[start].shape:
            end += 1
        batch = torch.from_numpy(np.ascontiguousarray(np.stack(arrays[start:end]).transpose(0, 3, 1, 2)))
        labels[start:end] = pred.logits(batch).argmax(1).cpu().numpy()
        start = end
    return labels


def evaluate_masks(labels_dir: str | Path, pred_dir: str | Path, *, workers: int | None = None) -> MiouResult:
    """The course's mIoU of the predicted masks in ``pred_dir`` against ``labels_dir`` (``fcnlab miou``).

    Returns a :class:`fcnlab.tasks.metrics.MiouResult`: ``.per_class`` (IoU of classes 0-5), ``.mean``,
    ``.warnings`` and ``.to_dict()``.
    """
    from fcnlab.evaluate.mask_folders import evaluate_masks as _evaluate

    return _evaluate(labels_dir, pred_dir, workers=workers)


def _config(config: TrainConfig | dict[str, Any] | str | Path, overrides: dict[str, Any]) -> TrainConfig:
    from fcnlab.config import TrainConfig, from_dict
    from fcnlab.recipes import load_yaml

    if isinstance(config, TrainConfig):
        values, source = config.to_dict(), "config"
    elif isinstance(config, dict):
        values, source = dict(config), "config dict"
    elif isinstance(config, (str, Path)):
        values, source = load_yaml(config), str(config)
    else:
        raise ConfigError(f"config must be a dict, a TrainConfig or a YAML file, got {type(config).__name__}")
    return from_dict({**values, **overrides}, source)


def train(
    config: TrainConfig | dict[str, Any] | str | Path | None,
    out: str | Path,
    *,
    resume: bool = False,
    change_settings: bool = False,
    **overrides: Any,
) -> dict[str, Any]:
    """Train a model into the run folder ``out`` (``fcnlab classify|segment train``); return the summary.

    ``config`` is a dict of config keys, a :class:`~fcnlab.config.TrainConfig` or a YAML recipe such as
    ``p1_vgg16bn`` (a shipped recipe) or a YAML file (its ``task`` key picks P1 or P2); keyword arguments override keys
    (``epochs=5, data=..., val=...``). With ``resume=True`` the run in ``out`` continues from its
    ``last.pt`` (``config`` may be None; ``overrides`` such as ``epochs`` extend it; other settings need
    ``change_settings=True``, as ``--change-settings`` on the command line). The summary holds
    ``run_dir``, ``best_epoch``, the best ``val_acc`` / ``val_miou`` and ``epochs``.
    """
    from fcnlab.training.start import train_new, train_resumed

    if resume:
        if config is not None:
            raise ConfigError("train(resume=True) takes its config from the checkpoint; pass config=None")
        return train_resumed(out, overrides, change_settings=change_settings)
    if config is None:
        raise ConfigError("train: give a config dict or YAML file (or resume=True)")
    return train_new(_config(config, overrides), out)


def compare_runs(runs: Sequence[str | Path]) -> Comparison:
    """Per-class IoU (P2) or accuracy (P1) of run folders side by side (``fcnlab compare``).

    ``.to_markdown()`` gives the printed table, ``.rows`` the numbers, ``.table()`` header and cells.
    """
    from fcnlab.report.compare import compare_runs as _compare

    return _compare(runs)


def write_report(
    runs: Sequence[str | Path], out: str | Path, fmt: str | None = None, title: str | None = None
) -> ReportResult:
    """Write the HTML (or Markdown, ``fmt="md"`` or a ``.md`` name) report of run folders (``fcnlab report``)."""
    from fcnlab.report import write_report as _write

    return _write(runs, out, fmt, title)


__all__ = [
    "build_model",
    "compare_runs",
    "evaluate_masks",
    "load_checkpoint",
    "predict_labels",
    "predict_masks",
    "train",
    "write_report",
]
