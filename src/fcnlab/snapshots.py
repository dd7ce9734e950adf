"""Predicted masks of fixed validation tiles at chosen epochs: the seed's "masks at epoch 5, 25, 50".

At each epoch in ``snapshot_epochs`` the hook predicts the same validation tiles (the ones named by
``snapshot_images``, else ``snapshot_tiles`` evenly spaced ones) and writes ``snapshots/epoch_005.png``
(satellite | ground truth | prediction) and ``epoch_005.npz`` (the class maps, the tiles' names and the
epoch's mIoU), then redraws ``snapshots/all_epochs.png`` with every snapshot epoch so far: rows labelled
with the tiles' file names, columns with the epoch and its validation mIoU.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from fcnlab.atomic import atomic_write_bytes
from fcnlab.config import TrainConfig
from fcnlab.data.transforms import normalize
from fcnlab.errors import ConfigError


def snapshot_indices(n: int, k: int) -> list[int]:
    """``k`` fixed, evenly spaced validation indices."""
    k = min(k, n)
    return sorted({int(round(i * (n - 1) / max(k - 1, 1))) for i in range(k)}) if k > 1 else [0]


def named_indices(files: Sequence[Path], names: Sequence[str], folder: str | None = None) -> list[int]:
    """Indices of the validation tiles named in ``names`` (file names like ``0013_sat.jpg``, stems like
    ``0013_sat``, or the pair's number ``0013``), in the order given; ConfigError naming a missing one."""
    lookup: dict[str, int] = {}
    for i, f in enumerate(files):
        number = f.stem.removesuffix("_sat")
        keys = [f.name, f.stem, number] + ([str(int(number))] if number.isdigit() else [])  # YAML reads 0013 as 13
        for key in keys:
            lookup.setdefault(key, i)
    out = []
    for name in names:
        key = Path(str(name)).name
        if key not in lookup:
            where = f"the {len(files)} validation tiles" + (f" of {folder}" if folder else "")
            shown = ", ".join(f.name for f in files[:3]) + (", ..." if len(files) > 3 else "")
            raise ConfigError(f"option snapshot_images (--snapshot-images): {name!r} is not among {where} "
                              f"({shown}); give file names such as {files[0].name if files else '0000_sat.jpg'}"
                              f" (a --val-limit sample may have left it out)")
        if lookup[key] not in out:
            out.append(lookup[key])
    return out


class SnapshotHook:
    """Epoch-end hook of the segmentation trainer."""

    def __init__(self, cfg: TrainConfig, run_dir: Path, val_data: Any, device: torch.device,
                 amp: torch.dtype | None):
        self.epochs = set(cfg.snapshot_epochs)
        self.folder = run_dir / "snapshots"
        if cfg.snapshot_images:
            index = named_indices(val_data.files, cfg.snapshot_images, cfg.val)
        else:
            index = snapshot_indices(len(val_data), cfg.snapshot_tiles)
        self.index = torch.tensor(index)
        self.names = [val_data.files[i].name for i in index]
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
        from fcnlab import viz

        preds = self.predict(model)
        images, masks = self.val_data.batch(self.index)
        imgs = [im.permute(1, 2, 0).numpy() for im in images]
        gts = [m.numpy().astype(np.uint8) for m in masks]
        miou = float(metrics.get("val_miou", float("nan")))
        buf = io.BytesIO()
        np.savez_compressed(buf, preds=preds, index=self.index.numpy(), epoch=epoch, miou=miou,
                            names=np.asarray(self.names))
        atomic_write_bytes(self.folder / f"epoch_{epoch:03d}.npz", buf.getvalue())
        title = f"epoch {epoch}: val mIoU {miou:.4f}"
        viz.plot_mask_snapshot(imgs, gts, list(preds), self.folder / f"epoch_{epoch:03d}.png", title,
                               row_labels=self.names)
        snaps, mious = {}, {}
        for f in sorted(self.folder.glob("epoch_*.npz")):
            with np.load(f) as z:
                if "names" in z and list(z["names"]) != self.names:
                    continue  # tiles of an earlier run in this folder (other --snapshot-images): not comparable
                snaps[int(z["epoch"])] = list(z["preds"])
                if "miou" in z:
                    mious[int(z["epoch"])] = float(z["miou"])
        viz.plot_snapshot_grid(snaps, imgs, gts, self.folder / "all_epochs.png",
                               "Predicted masks by epoch (columns: epoch and its validation mIoU)",
                               row_labels=self.names, mious=mious)
