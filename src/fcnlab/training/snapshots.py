"""Predicted masks of fixed validation tiles at chosen epochs: the seed's "masks at epoch 5, 25, 50".

At each epoch in ``snapshot_epochs`` the hook predicts the same ``snapshot_tiles`` validation tiles and
writes ``snapshots/epoch_005.png`` (satellite | ground truth | prediction) and ``epoch_005.npz`` (the
class maps), then redraws ``snapshots/all_epochs.png`` with every snapshot epoch so far.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np
import torch

from fcnlab.config import TrainConfig
from fcnlab.data.transforms import normalize
from fcnlab.runtime.files import atomic_write_bytes


def snapshot_indices(n: int, k: int) -> list[int]:
    """``k`` fixed, evenly spaced validation indices."""
    k = min(k, n)
    return sorted({int(round(i * (n - 1) / max(k - 1, 1))) for i in range(k)}) if k > 1 else [0]


class SnapshotHook:
    """Epoch-end hook of the segmentation trainer."""

    def __init__(self, cfg: TrainConfig, run_dir: Path, val_data: Any, device: torch.device,
                 amp: torch.dtype | None):
        self.epochs = set(cfg.snapshot_epochs)
        self.folder = run_dir / "snapshots"
        self.index = torch.tensor(snapshot_indices(len(val_data), cfg.snapshot_tiles))
        self.val_data, self.device, self.amp = val_data, device, amp

    @torch.inference_mode()
    def predict(self, model: torch.nn.Module) -> np.ndarray:
        model.eval()
        images, _ = self.val_data.batch(self.index)
        x = normalize(images.to(self.device))
        with torch.autocast(self.device.type, dtype=self.amp or torch.float32, enabled=self.amp is not None):
            logits = model(x)
        return logits.float().argmax(1).to(torch.uint8).cpu().numpy()

    def __call__(self, epoch: int, model: torch.nn.Module, metrics: dict[str, float], conf: Any) -> None:
        if epoch not in self.epochs:
            return
        from fcnlab.report import viz

        preds = self.predict(model)
        images, masks = self.val_data.batch(self.index)
        imgs = [im.permute(1, 2, 0).numpy() for im in images]
        gts = [m.numpy().astype(np.uint8) for m in masks]
        buf = io.BytesIO()
        np.savez_compressed(buf, preds=preds, index=self.index.numpy(), epoch=epoch)
        atomic_write_bytes(self.folder / f"epoch_{epoch:03d}.npz", buf.getvalue())
        title = f"epoch {epoch}: val mIoU {metrics.get('val_miou', float('nan')):.4f}"
        viz.plot_mask_snapshot(imgs, gts, list(preds), self.folder / f"epoch_{epoch:03d}.png", title)
        snaps = {}
        for f in sorted(self.folder.glob("epoch_*.npz")):
            with np.load(f) as z:
                snaps[int(z["epoch"])] = list(z["preds"])
        viz.plot_snapshot_grid(snaps, imgs, gts, self.folder / "all_epochs.png")
