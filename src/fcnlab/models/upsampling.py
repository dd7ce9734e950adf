"""Bilinear initialisation of transposed-convolution upsamplers (FCN paper, Long et al. 2015)."""

from __future__ import annotations

import torch
from torch import nn


def bilinear_kernel_1d(kernel_size: int) -> torch.Tensor:
    """Return the 1-D bilinear kernel of length ``kernel_size``.

    ``factor = (k + 1) // 2``; the centre is ``factor - 1`` for odd ``k`` and ``factor - 0.5`` for even
    ``k``; ``w(x) = 1 - |x - centre| / factor``.
    """
    if kernel_size < 1:
        raise ValueError(f"kernel_size must be >= 1, got {kernel_size}")
    factor = (kernel_size + 1) // 2
    centre = factor - 1 if kernel_size % 2 == 1 else factor - 0.5
    x = torch.arange(kernel_size, dtype=torch.float64)
    return (1 - (x - centre).abs() / factor).float()


def bilinear_kernel(channels: int, kernel_size: int) -> torch.Tensor:
    """Return a ``(channels, channels, k, k)`` weight for ``ConvTranspose2d`` that upsamples bilinearly.

    The 2-D kernel is the outer product of :func:`bilinear_kernel_1d` with itself, placed on the
    diagonal only (channel ``i`` to channel ``i``; zeros elsewhere), so classes never mix.
    """
    k1 = bilinear_kernel_1d(kernel_size)
    weight = torch.zeros(channels, channels, kernel_size, kernel_size)
    idx = torch.arange(channels)
    weight[idx, idx] = torch.outer(k1, k1)
    return weight


def bilinear_upsampler(channels: int, factor: int, learnable: bool = True) -> nn.ConvTranspose2d:
    """Return ``ConvTranspose2d(C, C, 2f, stride=f, padding=f/2, bias=False)`` initialised bilinearly.

    For an input of size ``n`` the output is exactly ``f * n`` (``factor`` must be even: 2, 8, 32).
    With ``learnable=False`` the weight is frozen
    (``requires_grad=False``) and must be left out of the optimizer
    (see :func:`fcnlab.models.params.trainable_param_groups`).
    """
    if factor < 2 or factor % 2:
        raise ValueError(f"upsampling factor must be an even number >= 2, got {factor}")
    up = nn.ConvTranspose2d(channels, channels, 2 * factor, stride=factor, padding=factor // 2, bias=False)
    with torch.no_grad():
        up.weight.copy_(bilinear_kernel(channels, 2 * factor))
    up.weight.requires_grad_(learnable)
    return up
