"""Optional TensorBoard logging (``--tensorboard``): scalars, per-class IoU and mask snapshots."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from fcnlab.errors import ConfigError


class TensorBoardHook:
    """Epoch-end hook writing event files to ``RUN_DIR/tensorboard``."""

    def __init__(self, run_dir: Path):
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            raise ConfigError("option tensorboard: the tensorboard package is not installed; "
                              "pip install 'fcnlab[tensorboard]' or drop --tensorboard") from None
        self.run_dir = run_dir
        self.writer = SummaryWriter(log_dir=str(run_dir / "tensorboard"))

    def __call__(self, epoch: int, model: torch.nn.Module, metrics: dict[str, float], conf: Any) -> None:
        for key, value in metrics.items():
            group = "iou" if key.startswith("iou_") else "val"
            self.writer.add_scalar(f"{group}/{key}", value, epoch)
        snap = self.run_dir / "snapshots" / f"epoch_{epoch:03d}.png"
        if snap.is_file():
            import numpy as np
            from PIL import Image

            self.writer.add_image("snapshots", np.asarray(Image.open(snap).convert("RGB")), epoch,
                                  dataformats="HWC")
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()
