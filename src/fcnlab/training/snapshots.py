"""Predicted masks of fixed validation tiles at chosen epochs: the seed's "masks at epoch 5, 25, 50".

At each epoch in ``snapshot_epochs`` the hook predicts the same validation tiles (the ones named by
``snapshot_images``, else ``snapshot_tiles`` evenly spaced ones) and writes ``snapshots/epoch_005.png``
(satellite | ground truth | prediction) and ``epoch_005.npz`` (the class maps, the tiles' names and the
epoch's mIoU), then redraws ``snapshots/all_epochs.png`` with every snapshot epoch so far: rows labelled
with the tiles' file names, columns with the epoch and its validation mIoU. Tiles and masks are shown at
full resolution, also for a model trained on reduced tiles (``--input-size``).
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np
import torch

from fcnlab.config import TrainConfig
from fcnlab.data.subset import named_indices, snapshot_indices
from fcnlab.data.transforms import normalize
from fcnlab.models.scaled import with_input_reduction
from fcnlab.runtime.device import autocast
from fcnlab.runtime.files import atomic_write_bytes


def full_size_tiles(files: list[tuple[Path, Path]]) -> tuple[torch.Tensor, torch.Tensor]:
    """uint8 tiles ``(N, 3, H, W)`` and int64 masks ``(N, H, W)`` read at full size from (tile, mask) files."""
    from fcnlab.data.segmentation import load_pair

    pairs = [load_pair(t, m)[:2] for t, m in files]
    return (
        torch.from_numpy(np.stack([img.transpose(2, 0, 1) for img, _ in pairs])),
        torch.from_numpy(np.stack([ids for _, ids in pairs])).long(),  # type: ignore[misc]
    )


class SnapshotHook:
    """Epoch-end hook of the segmentation trainer."""

    def __init__(self, cfg: TrainConfig, run_dir: Path, val_data: Any, device: torch.device, amp: torch.dtype | None):
        self.cfg = cfg  # its snapshot_epochs, which --time-budget may rescale during the run
        self.folder = run_dir / "snapshots"
        if cfg.snapshot_images:
            index = named_indices(val_data.files, cfg.snapshot_images, cfg.val)
        else:
            index = snapshot_indices(len(val_data), cfg.snapshot_tiles)
        self.index = torch.tensor(index)
        self.names = [val_data.files[i].name for i in index]
        self.reduction = getattr(val_data, "reduction", 1)
        if self.reduction > 1:  # a model trained on reduced tiles: its masks are shown at full resolution
            self.images, self.masks = full_size_tiles([(val_data.files[i], val_data.mask_files[i]) for i in index])
        else:
            self.images, self.masks = val_data.batch(self.index)
        self.device, self.amp = device, amp

    @torch.inference_mode()
    def predict(self, model: torch.nn.Module) -> np.ndarray:
        model = with_input_reduction(model, self.reduction).eval()
        x = normalize(self.images.to(self.device))
        with autocast(self.device, self.amp):
            logits = model(x)
        return logits.float().argmax(1).to(torch.uint8).cpu().numpy()

    def __call__(self, epoch: int, model: torch.nn.Module, metrics: dict[str, float], conf: Any) -> None:
        if epoch not in self.cfg.snapshot_epochs:
            return
        from fcnlab.report import viz

        preds = self.predict(model)
        imgs = [im.permute(1, 2, 0).numpy() for im in self.images]
        gts = [m.numpy().astype(np.uint8) for m in self.masks]
        miou = float(metrics.get("val_miou", float("nan")))
        buf = io.BytesIO()
        np.savez_compressed(
            buf, preds=preds, index=self.index.numpy(), epoch=epoch, miou=miou, names=np.asarray(self.names)
        )
        atomic_write_bytes(self.folder / f"epoch_{epoch:03d}.npz", buf.getvalue())
        title = f"epoch {epoch}: val mIoU {miou:.4f}"
        viz.plot_mask_snapshot(
            imgs, gts, list(preds), self.folder / f"epoch_{epoch:03d}.png", title, row_labels=self.names
        )
        snaps, mious = {}, {}
        for f in sorted(self.folder.glob("epoch_*.npz")):
            with np.load(f) as z:
                if "names" in z and list(z["names"]) != self.names:
                    continue  # tiles of an earlier run in this folder (other --snapshot-images): not comparable
                snaps[int(z["epoch"])] = list(z["preds"])
                if "miou" in z:
                    mious[int(z["epoch"])] = float(z["miou"])
        viz.plot_snapshot_grid(
            snaps,
            imgs,
            gts,
            self.folder / "all_epochs.png",
            "Predicted masks by epoch (columns: epoch and its validation mIoU)",
            row_labels=self.names,
            mious=mious,
        )
