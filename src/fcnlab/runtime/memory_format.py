"""Where fcnlab uses the channels-last (NHWC) memory format, decided in one place.

With ``channels_last: true`` (the default) the model and its input batches are channels-last

* on CUDA always (cuDNN's tensor-core convolutions want NHWC),
* on the CPU when the network input is at least :data:`CPU_MIN_SIDE` pixels per side: oneDNN's NHWC
  kernels win on large feature maps but lose on P1's 32x32 images, where the format reorders cost more
  than they save (measured with ``python benchmarks/memory_format_cpu.py``; numbers in docs/BENCHMARKS.md).

``channels_last: false`` keeps the default (NCHW) format everywhere.
"""

from __future__ import annotations

from typing import TypeVar

import torch

from fcnlab.config import TrainConfig

CPU_MIN_SIDE = 128

T = TypeVar("T", torch.Tensor, torch.nn.Module)


def use_channels_last(cfg: TrainConfig, device: torch.device) -> bool:
    """Whether the model of ``cfg`` runs in channels-last format on ``device`` (rules in the module doc)."""
    if not cfg.channels_last:
        return False
    return device.type == "cuda" or (device.type == "cpu" and cfg.image_size >= CPU_MIN_SIDE)


def to_channels_last(obj: T, enabled: bool) -> T:
    """``obj`` (a 4-d batch or a model) in channels-last format when ``enabled``; unchanged otherwise."""
    if not enabled:
        return obj
    if isinstance(obj, torch.Tensor):
        return obj.contiguous(memory_format=torch.channels_last)
    return obj.to(memory_format=torch.channels_last)
