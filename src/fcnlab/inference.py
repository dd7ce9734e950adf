"""Inference on trained checkpoints: batched logits, penultimate features, and tiled mask prediction."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from fcnlab.checkpoint import load_checkpoint, model_from_checkpoint
from fcnlab.config import TrainConfig, from_dict
from fcnlab.data.transforms import normalize, resize
from fcnlab.errors import ConfigError
from fcnlab.memory_format import to_channels_last, use_channels_last


@dataclass
class Predictor:
    """A model restored from a checkpoint, ready for inference on ``device``."""

    model: torch.nn.Module
    cfg: TrainConfig
    ckpt: dict[str, Any]
    path: Path
    device: torch.device
    amp: torch.dtype | None
    channels_last: bool = False
    tta: str = "none"  # test-time augmentation that ``model`` averages over (fcnlab.infer.tta)
    scales: tuple[float, ...] = (1.0,)

    @property
    def run_dir(self) -> Path:
        return self.path.parent

    def prepare(self, images_u8: torch.Tensor) -> torch.Tensor:
        """uint8 batch -> normalised float input on the device (resized for classifiers)."""
        x = normalize(images_u8.to(self.device, non_blocking=True))
        if self.cfg.task == "classify":
            x = resize(x, self.cfg.image_size)
        return to_channels_last(x, self.channels_last)

    @torch.inference_mode()
    def logits(self, images_u8: torch.Tensor) -> torch.Tensor:
        """Float32 logits for a uint8 batch (with segmentation TTA: log of the mean probabilities)."""
        with torch.autocast(self.device.type, dtype=self.amp or torch.float32, enabled=self.amp is not None):
            return self.model(self.prepare(images_u8)).float()


def load_predictor(ckpt_path: str | Path, device: str = "auto", task: str | None = None,
                   fold: bool = True, tta: str = "none", scales: tuple[float, ...] = (1.0,)) -> Predictor:
    """Restore a checkpoint for inference; for VGG classifiers at 32x32 use the exact folded head.

    ``tta`` / ``scales``: test-time augmentation (:func:`fcnlab.infer.tta.with_tta`), checked before the
    checkpoint is read when ``task`` is given.
    """
    from fcnlab.engine import amp_dtype, select_device
    from fcnlab.infer.tta import check_tta

    if task is not None:
        check_tta(task, tta, scales)

    ckpt_path = Path(ckpt_path)
    ckpt = load_checkpoint(ckpt_path)
    if ckpt_path.is_dir():
        ckpt_path = ckpt_path / ("best.pt" if (ckpt_path / "best.pt").is_file() else "last.pt")
    if task is not None and ckpt["task"] != task:
        raise ConfigError(f"--ckpt {ckpt_path}: checkpoint is a {ckpt['task']} model, not {task}; "
                          f"use 'fcnlab {ckpt['task']} ...'")
    cfg = from_dict(ckpt["config"], str(ckpt_path))
    check_tta(ckpt["task"], tta, scales)
    dev = select_device(device)
    amp_cfg = from_dict({**ckpt["config"], "device": str(dev)})
    return make_predictor(model_from_checkpoint(ckpt, dev), cfg, dev, amp_dtype(amp_cfg, dev), fold=fold,
                          owned=True, ckpt=ckpt, path=ckpt_path, tta=tta, scales=scales)


def make_predictor(model: torch.nn.Module, cfg: TrainConfig, device: torch.device, amp: torch.dtype | None,
                   fold: bool = True, fuse: bool = True, owned: bool = False,
                   ckpt: dict[str, Any] | None = None, path: Path = Path("."), tta: str = "none",
                   scales: tuple[float, ...] = (1.0,)) -> Predictor:
    """``model`` (on ``device``) made ready for inference.

    The fold and the fusion work on copies unless ``owned`` (the caller hands the model over); with
    ``fuse=False`` and not ``owned`` the returned model is ``model`` itself, put in eval mode and, where
    it applies, channels-last format.

    * ``fold``: VGG classifiers at 32x32 get the exact folded head (:mod:`fcnlab.models.folding`).
    * ``fuse``: eval-mode BatchNorm folded into the convolution before it (:mod:`fcnlab.models.fusion`).
    * on the CPU, FCN-32s's 7x7 ``fc6`` as ``unfold`` + one GEMM (:mod:`fcnlab.models.unfold_conv`), when
      the model is a copy (``fold``/``fuse``) or ``owned``.
    * channels-last format where :func:`fcnlab.memory_format.use_channels_last` says it is faster.
    * ``tta`` / ``scales``: the model wrapped for test-time augmentation (:func:`fcnlab.infer.tta.with_tta`).
    """
    from fcnlab.infer.tta import with_tta
    from fcnlab.models import fold_vgg_classifier, fuse_conv_bn
    from fcnlab.models.unfold_conv import unfold_large_convs

    if fold and cfg.task == "classify" and cfg.image_size == 32 and cfg.model.startswith("vgg"):
        model, owned = fold_vgg_classifier(model).to(device), True  # a copy
    if fuse:
        model, _ = fuse_conv_bn(model, inplace=owned)
        owned = True
    if device.type == "cpu" and owned:
        unfold_large_convs(model)
    cl = use_channels_last(cfg, device)
    model = with_tta(to_channels_last(model.eval(), cl), cfg.task, tta, scales)
    return Predictor(model, cfg, ckpt or {}, path, device, amp, cl, tta, tuple(float(s) for s in scales))


@torch.inference_mode()
def penultimate(pred: Predictor, images_u8: torch.Tensor) -> torch.Tensor:
    """Penultimate-layer features (4096-d for VGG16-BN) of a uint8 batch; with ``flip`` TTA the mean of the
    image's and its mirror's."""
    from fcnlab.infer.tta import ClassificationTTA, mean_over_mirrors
    from fcnlab.models import penultimate_features

    model = pred.model.model if isinstance(pred.model, ClassificationTTA) else pred.model
    with torch.autocast(pred.device.type, dtype=pred.amp or torch.float32, enabled=pred.amp is not None):
        return mean_over_mirrors(lambda x: penultimate_features(model, x), pred.prepare(images_u8), pred.tta)


TILE_MARGIN = 64


def check_tile(tile: int, margin: int = TILE_MARGIN) -> None:
    """Raise a one-line ConfigError unless ``tile`` leaves a core of 32 pixels inside its two margins."""
    if tile < 2 * margin + 32:
        raise ConfigError(f"option --tile: must be at least {2 * margin + 32} (2 x {margin} pixels of context "
                          f"plus a core of 32), got {tile}")


@torch.inference_mode()
def predict_mask(pred: Predictor, image: np.ndarray, tile: int = 1024, margin: int = TILE_MARGIN) -> np.ndarray:
    """Class ids ``(H, W)`` uint8 for an ``(H, W, 3)`` uint8 RGB image of any size.

    Images up to ``tile`` x ``tile`` pixels run in one pass (the FCN pads to a multiple of 32 and crops
    back). Larger ones (a 2448x2448 DeepGlobe original, a 10000x10000 mosaic) are cut into cores of
    ``tile - 2 * margin`` pixels, each predicted with ``margin`` pixels of context on every side, so
    memory beyond the image and its class map is bounded by one tile (the float input and the logits of
    a ``tile`` x ``tile`` window), never by the image size.
    """
    check_tile(tile, margin)
    h, w = image.shape[:2]

    def run(window: np.ndarray) -> np.ndarray:
        x = torch.from_numpy(np.ascontiguousarray(window.transpose(2, 0, 1)))[None]
        # max(1).indices == argmax(1) (first maximum on ties) and is several times faster on CPUs
        return pred.logits(x).max(1).indices[0].to(torch.uint8).cpu().numpy()

    if h <= tile and w <= tile:
        return run(image)
    out = np.empty((h, w), dtype=np.uint8)
    core = tile - 2 * margin
    for y0 in range(0, h, core):
        for x0 in range(0, w, core):
            y1, x1 = min(y0 + core, h), min(x0 + core, w)
            ya, xa = max(y0 - margin, 0), max(x0 - margin, 0)
            yb, xb = min(y1 + margin, h), min(x1 + margin, w)
            out[y0:y1, x0:x1] = run(image[ya:yb, xa:xb])[y0 - ya:y1 - ya, x0 - xa:x1 - xa]
    return out
