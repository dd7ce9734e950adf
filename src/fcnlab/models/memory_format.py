"""Where fcnlab uses the channels-last (NHWC) memory format, decided in one place.

With ``channels_last: true`` (the default) the model and its input batches are channels-last

* on CUDA always (cuDNN's tensor-core convolutions want NHWC),
* on the CPU when the network input is at least :data:`CPU_MIN_SIDE` pixels per side: oneDNN's NHWC
  kernels win on large feature maps but lose on VGG16-BN at P1's 32x32 images, where the format reorders
  cost more than they save (measured with ``python benchmarks/memory_format_cpu.py``; numbers in
  docs/ENGINEERING.md),
* on the CPU at any size for models registered with ``cpu_channels_last=True`` (convolution-only networks
  designed for 32x32 inputs, such as ``airnet``, whose NHWC kernels win there too).

``channels_last: false`` keeps the default (NCHW) format everywhere.
"""

from __future__ import annotations

from typing import TypeVar

import torch

from fcnlab.models.registry import get_spec

CPU_MIN_SIDE = 128

T = TypeVar("T", torch.Tensor, torch.nn.Module)


def use_channels_last(enabled: bool, model: str, side: int, device: torch.device) -> bool:
    """Whether network ``model`` with ``side``-pixel inputs runs in channels-last format on ``device`` when the
    config's ``channels_last`` is ``enabled`` (rules in the module doc)."""
    if not enabled:
        return False
    if device.type == "cuda":
        return True
    return device.type == "cpu" and (side >= CPU_MIN_SIDE or get_spec(model).cpu_channels_last)


def to_channels_last(obj: T, enabled: bool) -> T:
    """``obj`` (a 4-d batch or a model) in channels-last format when ``enabled``; unchanged otherwise."""
    if not enabled:
        return obj
    if isinstance(obj, torch.Tensor):
        return obj.contiguous(memory_format=torch.channels_last)
    return obj.to(memory_format=torch.channels_last)
