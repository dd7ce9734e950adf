"""Inference on trained checkpoints: a :class:`Predictor` (batched logits, penultimate features).

The input preprocessing is the task's own evaluation preprocessing (``Task.prepare_eval``), so validation,
inference and export see the same inputs. Masks of any size: :mod:`fcnlab.infer.tiling`.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import torch

from fcnlab.checkpoint import load_checkpoint, model_from_checkpoint
from fcnlab.config import TrainConfig, from_dict
from fcnlab.errors import ConfigError
from fcnlab.infer.folding import fold_vgg_classifier, foldable
from fcnlab.infer.fusion import fuse_conv_bn
from fcnlab.infer.tta import ClassificationTTA, check_tta, mean_over_mirrors, with_tta
from fcnlab.infer.unfold_conv import unfold_large_convs
from fcnlab.models.memory_format import to_channels_last, use_channels_last
from fcnlab.models.scaled import checkpoint_reduction, with_input_reduction
from fcnlab.runtime.device import amp_dtype, autocast, select_device
from fcnlab.tasks import make_task, task_info
from fcnlab.tasks.base import Task


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
    tta: str = "none"  # the test-time augmentation ``model`` averages over (fcnlab.infer.tta)
    scales: tuple[float, ...] = (1.0,)

    @property
    def run_dir(self) -> Path:
        return self.path.parent

    @cached_property
    def task(self) -> Task:
        """The checkpoint's task (its evaluation preprocessing)."""
        return make_task(self.cfg)

    def prepare(self, images_u8: torch.Tensor) -> torch.Tensor:
        """uint8 batch -> normalised float input on the device (resized for classifiers), as validation does."""
        x = self.task.prepare_eval(images_u8.to(self.device, non_blocking=True))
        return to_channels_last(x, self.channels_last)

    @torch.inference_mode()
    def logits(self, images_u8: torch.Tensor) -> torch.Tensor:
        """Float32 logits for a uint8 batch (with segmentation TTA: the log of the mean probabilities)."""
        with autocast(self.device, self.amp):
            return self.model(self.prepare(images_u8)).float()


def load_predictor(
    ckpt_path: str | Path,
    device: str = "auto",
    task: str | None = None,
    fold: bool = True,
    tta: str = "none",
    scales: tuple[float, ...] = (1.0,),
) -> Predictor:
    """Restore a checkpoint for inference; for VGG classifiers at 32x32 use the exact folded head.

    ``tta`` / ``scales``: test-time augmentation (:func:`fcnlab.infer.tta.with_tta`), checked once: before the
    checkpoint is read when ``task`` is given, else by its task before the model is built.
    """
    if task is not None:
        check_tta(task_info(task).dense, tta, scales)
    ckpt_path = Path(ckpt_path)
    ckpt = load_checkpoint(ckpt_path)
    if ckpt_path.is_dir():
        ckpt_path = ckpt_path / ("best.pt" if (ckpt_path / "best.pt").is_file() else "last.pt")
    if task is not None and ckpt["task"] != task:
        raise ConfigError(
            f"--ckpt {ckpt_path}: checkpoint is a {ckpt['task']} model, not {task}; use 'fcnlab {ckpt['task']} ...'"
        )
    cfg = from_dict(ckpt["config"], str(ckpt_path))
    if task is None:
        check_tta(task_info(cfg.task).dense, tta, scales)
    dev = select_device(device)
    return make_predictor(
        model_from_checkpoint(ckpt, dev),
        cfg,
        dev,
        amp_dtype(cfg.amp, dev),
        fold=fold,
        owned=True,
        ckpt=ckpt,
        path=ckpt_path,
        tta=tta,
        scales=scales,
    )


def make_predictor(
    model: torch.nn.Module,
    cfg: TrainConfig,
    device: torch.device,
    amp: torch.dtype | None,
    fold: bool = True,
    fuse: bool = True,
    owned: bool = False,
    ckpt: dict[str, Any] | None = None,
    path: Path = Path("."),
    tta: str = "none",
    scales: tuple[float, ...] = (1.0,),
) -> Predictor:
    """``model`` (on ``device``) made ready for inference.

    The fold and the fusion work on copies unless ``owned`` (the caller hands the model over); with
    ``fuse=False`` and not ``owned`` the returned model is ``model`` itself, put in eval mode and, where
    it applies, channels-last format.

    * ``fold``: VGG classifiers at 32x32 get the exact folded head (:mod:`fcnlab.infer.folding`).
    * ``fuse``: eval-mode BatchNorm folded into the convolution before it (:mod:`fcnlab.infer.fusion`).
    * on the CPU, FCN-32s's 7x7 ``fc6`` as ``unfold`` + one GEMM (:mod:`fcnlab.infer.unfold_conv`), when
      the model is a copy (``fold``/``fuse``) or ``owned``.
    * channels-last format where :func:`fcnlab.models.memory_format.use_channels_last` says it is faster.
    * a model trained on reduced tiles (``ckpt["input_reduction"]``) reduces its inputs alike and upsamples its
      logits to the input's size (:class:`fcnlab.models.scaled.ScaledInput`).
    * ``tta`` / ``scales``: the model wrapped for test-time augmentation (:func:`fcnlab.infer.tta.with_tta`).
    """
    if fold and foldable(cfg.model, cfg.image_size):
        model, owned = fold_vgg_classifier(model).to(device), True  # a copy
    if fuse:
        model, _ = fuse_conv_bn(model, inplace=owned)
        owned = True
    if device.type == "cpu" and owned:
        unfold_large_convs(model)
    cl = use_channels_last(cfg.channels_last, cfg.model, cfg.image_size, device)
    model = with_input_reduction(to_channels_last(model.eval(), cl), checkpoint_reduction(ckpt))
    model = with_tta(model, task_info(cfg.task).dense, tta, scales)
    return Predictor(model, cfg, ckpt or {}, path, device, amp, cl, tta, tuple(float(s) for s in scales))


@torch.inference_mode()
def penultimate(pred: Predictor, images_u8: torch.Tensor) -> torch.Tensor:
    """Penultimate-layer features (4096-d for VGG16-BN) of a uint8 batch; with ``flip`` TTA the mean of the
    image's and its mirror's."""
    from fcnlab.models import penultimate_features

    model = pred.model.model if isinstance(pred.model, ClassificationTTA) else pred.model
    with autocast(pred.device, pred.amp):
        return mean_over_mirrors(lambda x: penultimate_features(model, x), pred.prepare(images_u8), pred.tta)
