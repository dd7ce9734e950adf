"""The :class:`Task` interface: what training, evaluation and inference ask of a task, and its shared parts.

Training (:mod:`fcnlab.training`), inference (:mod:`fcnlab.infer`) and export are shared by both tasks; they ask
the task for everything that differs: data sets, preprocessing (the same ``prepare_eval`` for validation,
inference and export), augmentation, loss, metrics and per-epoch outputs.
"""

from __future__ import annotations

from typing import Any, cast

import numpy as np
import torch
import torch.nn.functional as F

from fcnlab.config import TrainConfig
from fcnlab.data.prefetch import Prefetcher
from fcnlab.data.sampling import fill_last_batch
from fcnlab.runtime.device import autocast, is_compiled
from fcnlab.runtime.distributed import all_reduce_sum
from fcnlab.runtime.progress import Progress
from fcnlab.tasks import eval_batch_size
from fcnlab.tasks.metrics import ConfusionMatrix


class Task:
    """Base class: data loading, batch preparation, loss and evaluation for one kind of model."""

    name = "task"
    metric = "val_metric"  # the validation metric that selects best.pt (higher is better)
    dense = False  # per-pixel logits at the input size (any input size), not one logit vector per image
    snapshots = False  # training saves validation predictions at the snapshot epochs
    input_reduction = 1  # the model trains on inputs reduced this many times (segment --input-size): load_train

    def __init__(self, cfg: TrainConfig):
        self.cfg = cfg
        self.loss_weight: torch.Tensor | None = None
        self.sample_factors: np.ndarray | None = None  # per-sample repeat factors (sampling: rare), from load_train
        # loss_weight copied to each device it was used on, and the tensor those copies were made from
        self._weight_copies: dict[torch.device, torch.Tensor] = {}
        self._weight_source: torch.Tensor | None = None

    @property
    def train_folder(self) -> str:
        """``cfg.data``, which the front doors require before a task loads data."""
        return cast(str, self.cfg.data)

    @property
    def val_folder(self) -> str:
        """``cfg.val``, which the front doors require before a task loads data."""
        return cast(str, self.cfg.val)

    def load_train(self) -> Any:
        raise NotImplementedError

    def load_val(self) -> Any:
        raise NotImplementedError

    def check_train_data(self, data: Any) -> str | None:
        """A warning about the training set worth printing before training (None: nothing to say)."""
        return None

    def prepare_eval(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 batch on the device -> float network input."""
        raise NotImplementedError

    def prepare_train(
        self, images: torch.Tensor, targets: torch.Tensor, gen: torch.Generator
    ) -> tuple[torch.Tensor, torch.Tensor]:
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
    def evaluate(
        self,
        model: torch.nn.Module,
        data: Any,
        device: torch.device,
        rank: int = 0,
        world_size: int = 1,
        amp_dtype: torch.dtype | None = None,
        desc: str = "validation",
    ) -> tuple[dict[str, float], ConfusionMatrix]:
        """Validation metrics over ``data`` (this rank takes every ``world_size``-th sample; all-reduced), with
        progress named ``desc`` when it takes more than a few seconds.

        The data path is training's: a :class:`Prefetcher` gathers the next batch in the background (pinned
        on CUDA) and the copies are ``non_blocking``. The loss sum and the confusion matrix stay on the
        device and are read once, after the last batch, so on a GPU no batch waits for the host.
        """
        model.eval()
        conf = ConfusionMatrix(self.cfg.num_classes, device)
        loss_sum = torch.zeros((), dtype=torch.float64, device=device)
        count = 0  # pixels or images: known on the host from the shapes
        bs = eval_batch_size(self.cfg)
        index = torch.arange(rank, len(data), world_size)
        batches = list(index.split(bs)) if len(index) else []  # an empty shard (more ranks than images): none
        counts = [len(b) for b in batches]  # the samples that count: a filled last batch has more
        if is_compiled(model):  # one batch shape: one compiled graph (and CUDA graph)
            batches = fill_last_batch(batches, index, bs)
        progress = Progress(len(index), desc, unit="image", enabled=rank == 0)
        for (images, targets), n in zip(Prefetcher(data, batches, pin=device.type == "cuda"), counts, strict=True):
            images = images.to(device, non_blocking=True)
            targets = targets.to(device, non_blocking=True)
            with autocast(device, amp_dtype):
                logits = model(self.prepare_eval(images))
            logits = logits.float()
            if n < len(logits):  # the fill of fill_last_batch
                targets, logits = targets[:n], logits[:n]
            loss_sum += F.cross_entropy(logits, targets, reduction="sum").double()
            count += targets.numel()
            conf.update(targets, logits.argmax(1))
            progress.update(n)
        progress.close()
        totals = torch.stack([loss_sum, torch.full_like(loss_sum, count)])  # a fill, not a host-to-device copy
        all_reduce_sum(totals)
        conf.all_reduce()
        total_loss, total_count = totals.tolist()  # the one read of the loss (the matrix is read by summarize)
        return self.summarize(conf, total_loss, int(total_count)), conf
