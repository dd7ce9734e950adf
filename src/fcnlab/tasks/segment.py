"""P2 segmentation: tiles + RGB masks, joint zoom/crop/flip/rotate (and CutMix), the course's mIoU over classes 0-5."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from fcnlab.data.sampling import repeat_factors, tile_class_fractions
from fcnlab.data.transforms import augment_pair, color_jitter, cutmix_pair, normalize
from fcnlab.errors import DataError
from fcnlab.tasks import task_info
from fcnlab.tasks.base import Task
from fcnlab.tasks.losses import segmentation_loss
from fcnlab.tasks.metrics import ConfusionMatrix, course_miou

UNKNOWN = 6


class SegmentationTask(Task):
    """P2: tiles + RGB masks, joint zoom/crop/flip/rotate, course mIoU over classes 0-5."""

    info = task_info("segment")
    name, metric, dense, snapshots = info.name, info.metric, info.dense, info.snapshots

    def load_train(self) -> Any:
        from fcnlab.data.segmentation import load_tile_set

        data = load_tile_set(
            self.train_folder,
            limit=self.cfg.limit,
            cache=self.cfg.cache,
            seed=self.cfg.seed,
            input_size=self.cfg.input_size,
        )
        self.input_reduction = data.reduction
        h, w = data.images.shape[-2:]
        if min(h, w) < 32:
            raise DataError(
                f"{data.files[0]}: tiles are {w}x{h}; segmentation training needs tiles of at least 32x32 pixels"
            )
        self.loss_weight = class_weights(
            data.class_pixel_counts(self.cfg.num_classes),
            self.cfg.class_weights,
            unscored=UNKNOWN if UNKNOWN < self.cfg.num_classes else None,
            ignored=self.cfg.ignore_unknown,
        )
        if self.cfg.sampling == "rare":
            fractions = tile_class_fractions(data.masks, self.cfg.num_classes)
            self.sample_factors = repeat_factors(fractions, self.cfg.repeat_threshold, self.cfg.rare_classes)
        return data

    def load_val(self) -> Any:
        """The validation tiles, reduced as the training tiles are (``input_size``): scoring every epoch at full
        resolution took a quarter of a laptop epoch (upsampling and scoring 16x the pixels), so training's
        ``val_miou`` is measured at the model's scale against majority-vote masks, and ``segment eval`` scores
        the chosen checkpoint at full resolution."""
        from fcnlab.data.segmentation import load_tile_set

        return load_tile_set(
            self.val_folder,
            limit=self.cfg.val_limit,
            cache=self.cfg.cache,
            seed=self.cfg.seed,
            input_size=self.cfg.input_size,
        )

    def prepare_eval(self, images: torch.Tensor) -> torch.Tensor:
        return normalize(images)

    def prepare_train(
        self, images: torch.Tensor, targets: torch.Tensor, gen: torch.Generator
    ) -> tuple[torch.Tensor, torch.Tensor]:
        if self.cfg.augment and self.cfg.color_jitter > 0:
            images = color_jitter(images, self.cfg.color_jitter, gen)
        x = normalize(images)
        crop = min(self.cfg.image_size, x.shape[-1], x.shape[-2])
        crop -= crop % 32
        if self.cfg.augment:
            x, targets = augment_pair(x, targets, crop, gen, self.cfg.min_scale, self.cfg.max_scale)
            return cutmix_pair(x, targets, self.cfg.cutmix, self.cfg.mix_prob, gen)
        if crop < x.shape[-1] or crop < x.shape[-2]:
            return augment_pair(x, targets, crop, gen, 1.0, 1.0, flips=False, rotations=False)
        return x, targets

    def loss(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        weight = self.loss_weight_on(logits.device)  # cached on the device: no copy (host sync) per step
        return segmentation_loss(
            self.cfg.loss, logits, targets, weight=weight, ignore_index=UNKNOWN if self.cfg.ignore_unknown else -100
        )

    def summarize(self, conf: ConfusionMatrix, loss_sum: float, count: int) -> dict[str, float]:
        """Course mIoU; when a class is absent from a (small) validation set the course's mean is nan,
        so ``val_miou`` is then the mean over the present classes (equal to the course's otherwise)."""
        counts = conf.mat.cpu()  # one read of the matrix
        result = course_miou(counts.numpy())
        mat = counts.double()
        out = {
            "val_loss": loss_sum / max(count, 1),
            "val_acc": float(mat.diag().sum() / mat.sum().clamp(min=1)),
            "val_miou": float(result.mean if not np.isnan(result.mean) else result.mean_present),
        }
        out.update({f"iou_{i}": float(v) for i, v in enumerate(result.per_class)})
        return out


def class_weights(
    counts: np.ndarray, mode: str, unscored: int | None = None, ignored: bool = False
) -> torch.Tensor | None:
    """Loss weights from class pixel counts: ``inverse`` (N / (C * n_c)) or ``median`` frequency.

    The frequencies are those of the scored classes: ``unscored`` (class 6, unknown, which the course's mIoU
    leaves out) takes no part in them and weighs 1, as a class of median (or average) frequency would, or 0 when
    ``ignored``: weighted by its own rarity (0.06 % of the training pixels) it would weigh about 130x the median
    class, and models painted it over every class (docs/BENCHMARKS.md). Absent classes weigh 0.
    """
    if mode == "none":
        return None
    counts = counts.astype(np.float64)  # a copy
    if unscored is not None:
        counts[unscored] = 0
    present = counts > 0
    freq = counts / max(counts.sum(), 1.0)
    w = np.zeros_like(freq)
    if mode == "inverse":
        w[present] = 1.0 / (present.sum() * freq[present])
    else:
        w[present] = np.median(freq[present]) / freq[present]
    if unscored is not None and not ignored:
        w[unscored] = 1.0
    return torch.tensor(w, dtype=torch.float32)
