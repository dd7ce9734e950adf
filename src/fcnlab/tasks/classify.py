"""P1 classification: ``{label}_{index}.png`` images, random crop + flip (and the optional batch policies of
:mod:`fcnlab.data.batch_augment`), top-1 accuracy."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F

from fcnlab.data.batch_augment import build_batch_augment
from fcnlab.data.transforms import normalize, random_crop_flip, resize
from fcnlab.errors import DataError
from fcnlab.tasks import task_info
from fcnlab.tasks.base import Task

if TYPE_CHECKING:
    from fcnlab.config import TrainConfig
    from fcnlab.tasks.metrics import ConfusionMatrix


class ClassificationTask(Task):
    """P1: ``{label}_{index}.png`` images, random crop + flip, top-1 accuracy."""

    info = task_info("classify")
    name, metric, dense, snapshots = info.name, info.metric, info.dense, info.snapshots

    def __init__(self, cfg: TrainConfig):
        super().__init__(cfg)
        # TrivialAugment/RandAugment, random erasing, CutMix/MixUp: None when all are off
        self.batch_augment = (
            build_batch_augment(
                cfg.augment_policy,
                randaugment_ops=cfg.randaugment_ops,
                randaugment_magnitude=cfg.randaugment_magnitude,
                random_erasing=cfg.random_erasing,
                cutmix=cfg.cutmix,
                mixup=cfg.mixup,
                mix_prob=cfg.mix_prob,
                num_classes=cfg.num_classes,
            )
            if cfg.augment
            else None
        )

    def load_train(self) -> Any:
        from fcnlab.data.classification import load_image_set

        data = load_image_set(
            self.train_folder,
            num_classes=self.cfg.num_classes,
            limit=self.cfg.limit,
            cache=self.cfg.cache,
            seed=self.cfg.seed,
        )
        if len(data) < 2:
            raise DataError(f"{self.cfg.data}: holds 1 image; training needs at least 2 (add images or raise --limit)")
        return data

    def load_val(self) -> Any:
        from fcnlab.data.classification import load_image_set

        return load_image_set(
            self.val_folder,
            csv_path=self.cfg.val_csv,
            num_classes=self.cfg.num_classes,
            limit=self.cfg.val_limit,
            cache=self.cfg.cache,
            seed=self.cfg.seed,
        )

    def check_train_data(self, data: Any) -> str | None:
        """P1's training set holds byte-identical images under two labels: name them."""
        from fcnlab.data.duplicates import check_labelled_images

        return check_labelled_images(data.images, data.labels, data.files, self.train_folder)

    def prepare_eval(self, images: torch.Tensor) -> torch.Tensor:
        return resize(normalize(images), self.cfg.image_size)

    def prepare_train(
        self, images: torch.Tensor, targets: torch.Tensor, gen: torch.Generator
    ) -> tuple[torch.Tensor, torch.Tensor]:
        if self.cfg.augment:
            images = random_crop_flip(images, self.cfg.pad, gen)
        if self.batch_augment is not None:
            images, targets = self.batch_augment(images, targets, gen)  # soft targets with CutMix/MixUp
        return self.prepare_eval(images), targets

    def loss(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        # class indices or (CutMix/MixUp) class probabilities; label smoothing applies to both
        return F.cross_entropy(logits, targets, label_smoothing=self.cfg.label_smoothing)

    def correct(self, logits: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, int]:
        if targets.ndim == 2:  # mixed targets: count the prediction of the larger share as correct
            targets = targets.argmax(1)
        return super().correct(logits, targets)

    def summarize(self, conf: ConfusionMatrix, loss_sum: float, count: int) -> dict[str, float]:
        mat = conf.mat.cpu().double()  # one read of the matrix
        return {"val_loss": loss_sum / max(count, 1), "val_acc": float(mat.diag().sum() / mat.sum().clamp(min=1))}
