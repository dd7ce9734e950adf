"""File-streaming datasets for evaluation and prediction: memory bounded by the batch, not the data set.

Files are decoded on demand (in worker processes when ``workers > 0``), a few batches ahead of the model,
so predicting 2,000 tiles holds only ``batch_size * (2 * workers + 1)`` decoded images at a time. A bad
file raises one :class:`~fcnlab.errors.DataError` naming it, also when a worker process decoded it
(PyTorch would otherwise re-raise it with the worker's traceback pasted into the message).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from fcnlab.data.images import read_rgb
from fcnlab.data.transforms import chw_tensor
from fcnlab.errors import DataError, FcnlabError
from fcnlab.runtime.cores import usable_cores


class Failure:
    """What a dataset returns instead of raising: the error's message, raised again by :class:`SafeLoader`."""

    def __init__(self, message: str):
        self.message = message


class ImageFiles(Dataset):
    """Images read on demand as uint8 ``(3, H, W)`` tensors, with an integer target per image."""

    def __init__(self, files: Sequence[Path], labels: Sequence[int] | None = None):
        self.files = files
        self.labels = labels if labels is not None else [-1] * len(files)

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int, int] | Failure:
        try:
            img = read_rgb(self.files[i])
        except FcnlabError as e:
            return Failure(str(e))
        return chw_tensor(img), self.labels[i], i


class TilePairs(Dataset):
    """Tiles and (optional) masks read on demand; masks as uint8 ``(H, W)`` class ids (scalar -1 if absent).

    uint8 keeps a huge labelled image's mask at one byte a pixel (100 MB for 10000x10000, not 800 MB);
    :class:`fcnlab.tasks.metrics.ConfusionMatrix` widens the ids itself.
    """

    def __init__(self, pairs: Sequence[tuple[Path, Path | None]]):
        self.pairs = pairs

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor, int, int] | Failure:
        from fcnlab.data.segmentation import load_pair

        try:
            img, ids, n_off = load_pair(*self.pairs[i])
        except FcnlabError as e:
            return Failure(str(e))
        mask = torch.from_numpy(ids.astype(np.uint8, copy=False)) if ids is not None else torch.tensor(-1)
        return chw_tensor(img), mask, n_off, i


def _collate(batch: list[Any]) -> list | Failure:
    """Stack fields when all images share a size, else keep a list (processed one by one)."""
    for item in batch:
        if isinstance(item, Failure):
            return item
    shapes = {tuple(item[0].shape) for item in batch}
    cols = list(zip(*batch, strict=True))
    if len(shapes) == 1:
        return [torch.stack(c) if isinstance(c[0], torch.Tensor) else torch.tensor(c) for c in cols]
    return [list(c) for c in cols]


class SafeLoader:
    """A DataLoader whose bad files raise one clean DataError in the main process."""

    def __init__(self, loader: DataLoader):
        self.loader = loader

    @property
    def dataset(self) -> Dataset:
        return self.loader.dataset

    def __len__(self) -> int:
        return len(self.loader)

    def __iter__(self) -> Iterator[list]:
        for batch in self.loader:
            if isinstance(batch, Failure):
                raise DataError(batch.message)
            yield batch


def loader(dataset: Dataset, batch_size: int, workers: int, pin: bool = False) -> SafeLoader:
    """A sequential loader (file order kept) with worker processes for decoding; bad files raise DataError.

    More workers than usable cores would only make torch warn on stderr (the default 2 on a one-core
    machine), so they are capped there."""
    workers = max(0, min(workers, len(dataset) // max(batch_size, 1), usable_cores()))  # type: ignore[arg-type]
    return SafeLoader(
        DataLoader(
            dataset,
            batch_size=batch_size,
            shuffle=False,
            num_workers=workers,
            collate_fn=_collate,
            pin_memory=pin,
            persistent_workers=False,
            prefetch_factor=2 if workers else None,
        )
    )
