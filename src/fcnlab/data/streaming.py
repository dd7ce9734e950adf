"""File-streaming datasets for evaluation and prediction: memory bounded by the batch, not the data set."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from fcnlab.data.images import read_rgb


class ImageFiles(Dataset):
    """Images read on demand as uint8 ``(3, H, W)`` tensors, with an integer target per image."""

    def __init__(self, files: list[Path], labels: list[int] | None = None):
        self.files = files
        self.labels = labels if labels is not None else [-1] * len(files)

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int, int]:
        img = read_rgb(self.files[i])
        return torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1))), self.labels[i], i


class TilePairs(Dataset):
    """Tiles and (optional) masks read on demand; masks as int64 ``(H, W)`` class ids (scalar -1 if absent)."""

    def __init__(self, pairs: list[tuple[Path, Path | None]]):
        self.pairs = pairs

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor, int, int]:
        from fcnlab.data.segmentation import load_pair

        img, ids, n_off = load_pair(*self.pairs[i])
        mask = torch.from_numpy(ids.astype(np.int64)) if ids is not None else torch.tensor(-1)
        return torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1))), mask, n_off, i


def _collate(batch: list[tuple]) -> list:
    """Stack fields when all images share a size, else keep a list (processed one by one)."""
    shapes = {tuple(item[0].shape) for item in batch}
    cols = list(zip(*batch, strict=True))
    if len(shapes) == 1:
        return [torch.stack(c) if isinstance(c[0], torch.Tensor) else torch.tensor(c) for c in cols]
    return [list(c) for c in cols]


def loader(dataset: Dataset, batch_size: int, workers: int, pin: bool = False) -> DataLoader:
    """A sequential DataLoader (file order kept) with worker processes for decoding."""
    workers = min(workers, len(dataset) // max(batch_size, 1))
    return DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=workers, collate_fn=_collate,
                      pin_memory=pin, persistent_workers=False, prefetch_factor=2 if workers else None)
