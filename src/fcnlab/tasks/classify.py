"""P1 classification: ``{label}_{index}.png`` images, random crop + flip, top-1 accuracy."""

from __future__ import annotations

import torch.nn.functional as F

from fcnlab.data.transforms import normalize, random_crop_flip, resize
from fcnlab.errors import DataError
from fcnlab.tasks import task_info
from fcnlab.tasks.base import Task


class ClassificationTask(Task):
    """P1: ``{label}_{index}.png`` images, random crop + flip, top-1 accuracy."""

    info = task_info("classify")
    name, metric, dense, snapshots = info.name, info.metric, info.dense, info.snapshots

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

    def check_train_data(self, data):
        """P1's training set holds byte-identical images under two labels: name them."""
        from fcnlab.data.duplicates import check_labelled_images

        return check_labelled_images(data.images, data.labels, data.files, self.cfg.data)

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
