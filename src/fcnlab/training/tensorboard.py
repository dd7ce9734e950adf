"""Optional TensorBoard logging (``--tensorboard``): scalars, per-class IoU and mask snapshots.

Training (:mod:`fcnlab.training.fit`) calls the hook after each epoch as ``hook(epoch, model, row, conf)``,
where ``row`` is the epoch's
``metrics.csv`` row (``epoch``, ``lr``, ``train_loss``, ``train_acc``, ``val_loss``, ``val_acc``,
``val_miou``, ``iou_0`` ...). Event files go to ``RUN_DIR/tensorboard``; view them with
``tensorboard --logdir RUN_DIR/tensorboard``. Tags:

* ``loss/train``, ``loss/val``, ``accuracy/train``, ``accuracy/val`` (train and val on one chart each),
  ``miou/val`` and ``lr``;
* ``iou/<i>_<class>`` for the IoU of each land-cover class (left out in epochs where a class is absent);
* ``snapshots/masks``: the image ``snapshots/epoch_NNN.png`` (satellite | ground truth | prediction) at the
  snapshot epochs (the snapshot hook runs first);
* ``config``: the run's ``config.yaml`` as text, once.

The writer starts at the first logged epoch with ``purge_step`` set to it, so a resumed run replaces the
events that an interrupted one wrote after its last checkpoint instead of drawing them twice.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import torch

from fcnlab.errors import ConfigError

#: ``row`` key -> TensorBoard tag.
SCALAR_TAGS = {
    "train_loss": "loss/train",
    "val_loss": "loss/val",
    "train_acc": "accuracy/train",
    "val_acc": "accuracy/val",
    "val_miou": "miou/val",
    "lr": "lr",
}


def _summary_writer() -> type:
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        raise ConfigError(
            "option tensorboard: the tensorboard package is not installed; "
            "pip install 'fcnlab[tensorboard]' or drop --tensorboard"
        ) from None
    return SummaryWriter


def iou_tag(key: str) -> str:
    """``iou_2`` -> ``iou/2_rangeland`` (class names of the course)."""
    from fcnlab.data.mask_codec import CLASS_NAMES

    index = int(key.split("_", 1)[1])
    name = CLASS_NAMES[index] if 0 <= index < len(CLASS_NAMES) else f"class{index}"
    return f"iou/{index}_{name}"


class TensorBoardHook:
    """Epoch-end hook writing event files to ``RUN_DIR/tensorboard``."""

    def __init__(self, run_dir: Path):
        self.writer_class = _summary_writer()  # fail at start-up, not after the first epoch
        self.run_dir = Path(run_dir)
        self.log_dir = self.run_dir / "tensorboard"
        self.writer: Any = None

    def _open(self, epoch: int) -> Any:
        if self.writer is None:
            self.writer = self.writer_class(log_dir=str(self.log_dir), purge_step=epoch)
            config = self.run_dir / "config.yaml"
            if config.is_file():
                text = config.read_text(encoding="utf-8", errors="replace")
                self.writer.add_text("config", "```\n" + text + "\n```", epoch)
        return self.writer

    def __call__(self, epoch: int, model: torch.nn.Module, metrics: dict[str, Any], conf: Any) -> None:
        writer = self._open(epoch)
        for key, value in metrics.items():
            tag = SCALAR_TAGS.get(key) or (iou_tag(key) if key.startswith("iou_") else None)
            if tag is None or not isinstance(value, (int, float)) or isinstance(value, bool):
                continue
            if math.isfinite(value):
                writer.add_scalar(tag, float(value), epoch)
        snap = self.run_dir / "snapshots" / f"epoch_{epoch:03d}.png"
        if snap.is_file():
            import numpy as np
            from PIL import Image

            with Image.open(snap) as img:
                writer.add_image("snapshots/masks", np.asarray(img.convert("RGB")), epoch, dataformats="HWC")
        writer.flush()

    def close(self) -> None:
        """Flush and close the event file (called when training ends or stops)."""
        if self.writer is not None:
            self.writer.close()
            self.writer = None
