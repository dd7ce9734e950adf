"""What differs between classification (P1) and segmentation (P2): data, inputs, loss and metrics.

The training engine (:mod:`fcnlab.engine`) is shared; it asks a :class:`Task` for everything specific.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from fcnlab.config import TrainConfig
from fcnlab.data.transforms import augment_pair, normalize, random_crop_flip, resize
from fcnlab.distributed import all_reduce_sum
from fcnlab.errors import DataError
from fcnlab.metrics import ConfusionMatrix, course_miou

UNKNOWN = 6


class Prefetcher:
    """Gathers the next batch from the decoded arrays in a background thread (pinned for CUDA).

    Used by training (:func:`fcnlab.engine.train_one_epoch`) and validation (:meth:`Task.evaluate`): with
    ``pin`` the batches come in page-locked memory, so ``.to(device, non_blocking=True)`` is a true
    asynchronous copy (a copy from pageable memory waits for the device), and gathering batch ``i + 1``
    overlaps the device's work on batch ``i``.
    """

    def __init__(self, data: Any, batches: list[torch.Tensor], pin: bool):
        self.data, self.batches, self.pin = data, batches, pin
        self.result: Any = None
        self.thread: threading.Thread | None = None

    def _load(self, i: int) -> None:
        try:
            x, y = self.data.batch(self.batches[i])
            if self.pin:
                x, y = x.pin_memory(), y.pin_memory()
            self.result = (x, y)
        except BaseException as e:  # re-raised in the consuming thread, never a stale batch
            self.result = e

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        n = len(self.batches)
        if n == 0:
            return
        self._load(0)
        for i in range(n):
            item = self.result
            if isinstance(item, BaseException):
                raise item
            if i + 1 < n:
                self.thread = threading.Thread(target=self._load, args=(i + 1,), daemon=True)
                self.thread.start()
            yield item
            if self.thread is not None:
                self.thread.join()
                self.thread = None


class Task:
    """Base class: data loading, batch preparation, loss and evaluation for one kind of model."""

    name = "task"
    metric = "val_metric"  # the validation metric that selects best.pt (higher is better)

    def __init__(self, cfg: TrainConfig):
        self.cfg = cfg
        self.loss_weight: torch.Tensor | None = None
        self.sample_factors: np.ndarray | None = None  # per-sample repeat factors (sampling: rare)
        # loss_weight copied to each device it was used on, and the tensor those copies were made from
        self._weight_copies: dict[torch.device, torch.Tensor] = {}
        self._weight_source: torch.Tensor | None = None

    def load_train(self) -> Any:
        raise NotImplementedError

    def load_val(self) -> Any:
        raise NotImplementedError

    def prepare_eval(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 batch on the device -> float network input."""
        raise NotImplementedError

    def prepare_train(self, images: torch.Tensor, targets: torch.Tensor,
                      gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """uint8 batch and targets on the device -> augmented float input and targets."""
        raise NotImplementedError

    def loss(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Mean cross-entropy (per image for P1, per pixel for P2)."""
        raise NotImplementedError

    def correct(self, logits: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, int]:
        """Number of correct predictions (images or pixels) and how many were counted."""
        pred = logits.argmax(1)
        return (pred == targets).sum(), targets.numel()

    def summarize(self, conf: ConfusionMatrix, loss_sum: float, count: int) -> dict[str, float]:
        raise NotImplementedError

    def loss_weight_on(self, device: torch.device) -> torch.Tensor | None:
        """``loss_weight`` on ``device``, copied there once and then reused (None without class weights).

        ``tensor.to("cuda")`` from ordinary host memory waits for every queued kernel, so copying the
        weights in every ``loss`` call put a host sync in every training step. The copy is redone only when
        ``loss_weight`` is replaced by another tensor.
        """
        source = self.loss_weight
        if source is None:
            return None
        if source is not self._weight_source:
            self._weight_copies, self._weight_source = {}, source
        copy = self._weight_copies.get(device)
        if copy is None:
            # an ordinary tensor even when first asked for in inference mode (backward saves the weight)
            with torch.inference_mode(False), torch.no_grad():
                copy = source.to(device)
            self._weight_copies[device] = copy
        return copy

    @torch.inference_mode()
    def evaluate(self, model: torch.nn.Module, data: Any, device: torch.device, rank: int = 0,
                 world_size: int = 1, amp_dtype: torch.dtype | None = None) -> tuple[dict[str, float],
                                                                                     ConfusionMatrix]:
        """Validation metrics over ``data`` (this rank takes every ``world_size``-th sample; all-reduced).

        The data path is training's: a :class:`Prefetcher` gathers the next batch in the background (pinned
        on CUDA) and the copies are ``non_blocking``. The loss sum and the confusion matrix stay on the
        device and are read once, after the last batch, so on a GPU no batch waits for the host.
        """
        model.eval()
        conf = ConfusionMatrix(self.cfg.num_classes, device)
        loss_sum = torch.zeros((), dtype=torch.float64, device=device)
        count = 0  # pixels or images: known on the host from the shapes
        bs = self.cfg.eval_batch_size or 2 * self.cfg.batch_size
        index = torch.arange(rank, len(data), world_size)
        batches = list(index.split(bs)) if len(index) else []  # an empty shard (more ranks than images): none
        for images, targets in Prefetcher(data, batches, pin=device.type == "cuda"):
            images = images.to(device, non_blocking=True)
            targets = targets.to(device, non_blocking=True)
            with torch.autocast(device.type, dtype=amp_dtype or torch.float32, enabled=amp_dtype is not None):
                logits = model(self.prepare_eval(images))
            logits = logits.float()
            loss_sum += F.cross_entropy(logits, targets, reduction="sum").double()
            count += targets.numel()
            conf.update(targets, logits.argmax(1))
        totals = torch.stack([loss_sum, torch.full_like(loss_sum, count)])  # a fill, not a host-to-device copy
        all_reduce_sum(totals)
        conf.all_reduce()
        total_loss, total_count = totals.tolist()  # the one read of the loss (the matrix is read by summarize)
        return self.summarize(conf, total_loss, int(total_count)), conf


class ClassificationTask(Task):
    """P1: ``{label}_{index}.png`` images, random crop + flip, top-1 accuracy."""

    name = "classify"
    metric = "val_acc"

    def load_train(self):
        from fcnlab.data.classification import load_image_set

        data = load_image_set(self.cfg.data, num_classes=self.cfg.num_classes, limit=self.cfg.limit,
                              cache=self.cfg.cache)
        if len(data) < 2:
            raise DataError(f"{self.cfg.data}: holds 1 image; training needs at least 2 (add images or raise "
                            f"--limit)")
        return data

    def load_val(self):
        from fcnlab.data.classification import load_image_set

        return load_image_set(self.cfg.val, csv_path=self.cfg.val_csv, num_classes=self.cfg.num_classes,
                              limit=self.cfg.val_limit, cache=self.cfg.cache)

    def prepare_eval(self, images):
        return resize(normalize(images), self.cfg.image_size)

    def prepare_train(self, images, targets, gen):
        if self.cfg.augment:
            images = random_crop_flip(images, self.cfg.pad, gen)
        return self.prepare_eval(images), targets

    def loss(self, logits, targets):
        return F.cross_entropy(logits, targets, label_smoothing=self.cfg.label_smoothing)

    def summarize(self, conf, loss_sum, count):
        mat = conf.mat.cpu().double()  # one read of the matrix
        return {"val_loss": loss_sum / max(count, 1), "val_acc": float(mat.diag().sum() / mat.sum().clamp(min=1))}


class SegmentationTask(Task):
    """P2: tiles + RGB masks, joint zoom/crop/flip/rotate, course mIoU over classes 0-5."""

    name = "segment"
    metric = "val_miou"

    def load_train(self):
        from fcnlab.data.segmentation import load_tile_set

        data = load_tile_set(self.cfg.data, limit=self.cfg.limit, cache=self.cfg.cache)
        h, w = data.images.shape[-2:]
        if min(h, w) < 32:
            raise DataError(f"{data.files[0]}: tiles are {w}x{h}; segmentation training needs tiles of at least "
                            f"32x32 pixels")
        self.loss_weight = class_weights(data.class_pixel_counts(self.cfg.num_classes), self.cfg.class_weights,
                                         ignore=UNKNOWN if self.cfg.ignore_unknown else None)
        if self.cfg.sampling == "rare":
            from fcnlab.data.sampling import repeat_factors, tile_class_fractions

            fractions = tile_class_fractions(data.masks, self.cfg.num_classes)
            self.sample_factors = repeat_factors(fractions, self.cfg.repeat_threshold, self.cfg.rare_classes)
        return data

    def load_val(self):
        from fcnlab.data.segmentation import load_tile_set

        return load_tile_set(self.cfg.val, limit=self.cfg.val_limit, cache=self.cfg.cache)

    def prepare_eval(self, images):
        return normalize(images)

    def prepare_train(self, images, targets, gen):
        x = normalize(images)
        crop = min(self.cfg.image_size, x.shape[-1], x.shape[-2])
        crop -= crop % 32
        if self.cfg.augment:
            return augment_pair(x, targets, crop, gen, self.cfg.min_scale, self.cfg.max_scale)
        if crop < x.shape[-1] or crop < x.shape[-2]:
            return augment_pair(x, targets, crop, gen, 1.0, 1.0, flips=False, rotations=False)
        return x, targets

    def loss(self, logits, targets):
        from fcnlab.train.losses import segmentation_loss

        weight = self.loss_weight_on(logits.device)  # cached on the device: no copy (host sync) per step
        return segmentation_loss(self.cfg.loss, logits, targets, weight=weight,
                                 ignore_index=UNKNOWN if self.cfg.ignore_unknown else -100)

    def summarize(self, conf, loss_sum, count):
        """Course mIoU; when a class is absent from a (small) validation set the course's mean is nan,
        so ``val_miou`` is then the mean over the present classes (equal to the course's otherwise)."""
        counts = conf.mat.cpu()  # one read of the matrix
        result = course_miou(counts.numpy())
        mat = counts.double()
        out = {"val_loss": loss_sum / max(count, 1),
               "val_acc": float(mat.diag().sum() / mat.sum().clamp(min=1)),
               "val_miou": float(result.mean if not np.isnan(result.mean) else result.mean_present)}
        out.update({f"iou_{i}": float(v) for i, v in enumerate(result.per_class)})
        return out


def class_weights(counts: np.ndarray, mode: str, ignore: int | None = None) -> torch.Tensor | None:
    """Loss weights from class pixel counts: ``inverse`` (N / (C * n_c)) or ``median`` frequency."""
    if mode == "none":
        return None
    counts = counts.astype(np.float64)
    if ignore is not None:
        counts[ignore] = 0
    present = counts > 0
    freq = counts / counts.sum()
    w = np.zeros_like(freq)
    if mode == "inverse":
        w[present] = 1.0 / (present.sum() * freq[present])
    else:
        w[present] = np.median(freq[present]) / freq[present]
    return torch.tensor(w, dtype=torch.float32)


def make_task(cfg: TrainConfig) -> Task:
    """The Task object for ``cfg.task``."""
    return {"classify": ClassificationTask, "segment": SegmentationTask}[cfg.task](cfg)


def run_name(path: str | Path) -> str:
    """A short display name for a run folder."""
    return Path(path).resolve().name
