"""Training data resident on the GPU: decoded once, uploaded once, indexed and augmented on the device.

P1's 22,500 images are 69 MB of uint8 and P2's 2,057 tiles with masks 2.2 GB, a small share of a
data-centre GPU's memory. Kept there, a training step gathers its batch with one device-side index
(``images[index]``) instead of a host gather, a pinned copy and an upload; the batch augmentation of
:mod:`fcnlab.data.transforms` already runs on device tensors. There are no loader workers and no per-step
host work: an epoch's sample order is uploaded once (:func:`device_batches`).

:func:`make_resident` decides: on a CUDA device, when the data fits in the free device memory with
headroom left for training (:func:`fits`), it uploads; otherwise (the CPU, another device type, or too
little memory) it returns the host data set unchanged, so the caller keeps today's path (on the CPU the
decoded arrays already are "resident": they are in memory).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

#: Device memory kept free for training (weights, optimizer state, activations, cuDNN workspaces): the
#: larger of this many bytes and :data:`HEADROOM_SHARE` of the card.
HEADROOM_BYTES = 4 * 2**30
HEADROOM_SHARE = 0.25
_UPLOAD_CHUNK = 64 * 2**20  # bytes per host-to-device copy while uploading (bounds host memory for memmaps)


def host_arrays(data: Any) -> tuple[np.ndarray, np.ndarray | torch.Tensor]:
    """The decoded ``images`` and the targets (``masks`` of a tile set, else ``labels``) of a data set."""
    targets = data.masks if hasattr(data, "masks") else data.labels
    return data.images, targets


def nbytes(data: Any) -> int:
    """Bytes the data set takes on the device (uint8 images, uint8 masks or int64 labels)."""
    images, targets = host_arrays(data)
    t = targets.nbytes if isinstance(targets, np.ndarray) else targets.numel() * targets.element_size()
    return int(images.nbytes + t)


def fits(
    size: int, device: torch.device, headroom_bytes: int = HEADROOM_BYTES, headroom_share: float = HEADROOM_SHARE
) -> tuple[bool, str]:
    """Whether ``size`` bytes can live on ``device`` with headroom left; also a one-line reason.

    Only CUDA devices hold resident data; the free memory is read now (``torch.cuda.mem_get_info``), so
    runs already sharing the GPU are counted.
    """
    if device.type != "cuda":
        return False, f"device {device.type}: data stays in host memory"
    free, total = torch.cuda.mem_get_info(device)
    headroom = max(headroom_bytes, int(headroom_share * total))
    if size + headroom > free:
        return False, (
            f"{size / 2**30:.2f} GiB of data + {headroom / 2**30:.1f} GiB headroom > "
            f"{free / 2**30:.1f} GiB free on {device}: data stays in host memory"
        )
    return True, f"{size / 2**30:.2f} GiB of data resident on {device} ({free / 2**30:.1f} GiB were free)"


@dataclass
class ResidentData:
    """A decoded data set on the device: ``batch`` returns device tensors with no host work.

    ``source`` is the host data set it was made from (file names, off-palette report, class counts).
    """

    images: torch.Tensor  # (N, 3, H, W) uint8
    targets: torch.Tensor  # (N,) int64 labels or (N, H, W) uint8 masks
    source: Any

    resident = True

    def __len__(self) -> int:
        return self.images.shape[0]

    @property
    def device(self) -> torch.device:
        return self.images.device

    @property
    def files(self) -> list:
        return self.source.files

    def batch(self, index: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """uint8 images and int64 targets of ``index`` (best already on the device: :func:`device_batches`),
        the same values as the host set's ``batch``."""
        index = index.to(self.device, non_blocking=True)
        return self.images.index_select(0, index), self.targets.index_select(0, index).long()

    @classmethod
    def upload(cls, data: Any, device: torch.device) -> ResidentData:
        """Copy a host data set's arrays to ``device`` in chunks (memory-mapped caches are read once)."""
        images, targets = host_arrays(data)
        return cls(_upload(images, device), _upload(targets, device), data)


def _upload(array: np.ndarray | torch.Tensor, device: torch.device) -> torch.Tensor:
    if isinstance(array, torch.Tensor):
        return array.to(device)
    out = torch.empty(array.shape, dtype=torch.from_numpy(np.empty(0, dtype=array.dtype)).dtype, device=device)
    per_row = max(int(np.prod(array.shape[1:])) * array.itemsize, 1)
    step = max(_UPLOAD_CHUNK // per_row, 1)
    for i in range(0, array.shape[0], step):
        out[i : i + step].copy_(torch.from_numpy(np.array(array[i : i + step])))  # a writable copy of a memmap's rows
    return out


def make_resident(
    data: Any, device: torch.device, enabled: bool = True, headroom_bytes: int = HEADROOM_BYTES
) -> tuple[Any, str]:
    """``(data on the device, reason)`` when ``enabled`` and it fits, else ``(data unchanged, reason)``."""
    if not enabled:
        return data, "resident data off"
    ok, reason = fits(nbytes(data), device, headroom_bytes)
    if not ok:
        return data, reason
    return ResidentData.upload(data, device), reason


def is_resident(data: Any) -> bool:
    """True for a :class:`ResidentData` (its batches need no pinning, copying or prefetch thread)."""
    return getattr(data, "resident", False) is True


def device_batches(batches: list[torch.Tensor], device: torch.device) -> list[torch.Tensor]:
    """An epoch's index batches on ``device`` with one upload (a per-step copy of a pageable index tensor
    would wait for the queued kernels every step). On the CPU the batches come back as they are."""
    if device.type == "cpu" or not batches:
        return batches
    flat = torch.cat(batches)
    if device.type == "cuda":
        flat = flat.pin_memory()
    return list(flat.to(device, non_blocking=True).split([len(b) for b in batches]))
