"""Large-kernel convolutions as one matrix product, for CPU inference.

FCN-32s's ``fc6`` (``Conv2d(512, 4096, 7, padding=3)``, the transplanted ``Linear(25088, 4096)``) runs at
about half of the CPU's matmul speed in oneDNN's direct convolution on its small 16x16 maps (512x512
input), yet it is 23 % of the model's FLOPs. Written as ``unfold`` (im2col) and a single GEMM against the
``(4096, 25088)`` weight matrix it runs at about 330 instead of 220 GFLOP/s on 2 cores (0.32 instead of
0.48 s for a batch of two 512x512 tiles; ``fcnlab bench --only fcn32s_vgg16`` measures the whole model).
The outputs are the same up to float rounding.
"""

from __future__ import annotations

from typing import cast

import torch
import torch.nn.functional as F
from torch import nn


class UnfoldConv2d(nn.Module):
    """Inference-only stand-in for a ``Conv2d`` (groups 1): ``unfold`` then one matrix product."""

    def __init__(self, conv: nn.Conv2d) -> None:
        super().__init__()
        self.kernel_size, self.stride = conv.kernel_size, conv.stride
        self.padding, self.dilation = conv.padding, conv.dilation
        self.out_channels = conv.out_channels
        self.weight = nn.Parameter(
            conv.weight.detach().reshape(conv.out_channels, -1).contiguous(), requires_grad=False
        )
        self.bias = None if conv.bias is None else nn.Parameter(conv.bias.detach().clone(), requires_grad=False)

    def extra_repr(self) -> str:
        return (
            f"{self.weight.shape[1]} -> {self.out_channels}, kernel_size={self.kernel_size}, "
            f"padding={self.padding} (unfold + GEMM)"
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Same result as the convolution it replaces."""
        b, _, h, w = x.shape
        kh, kw = self.kernel_size
        pad = cast(tuple[int, int], self.padding)  # a tuple once built (the stubs also allow "same")
        oh = (h + 2 * pad[0] - self.dilation[0] * (kh - 1) - 1) // self.stride[0] + 1
        ow = (w + 2 * pad[1] - self.dilation[1] * (kw - 1) - 1) // self.stride[1] + 1
        cols = F.unfold(x, self.kernel_size, self.dilation, pad, self.stride)  # (B, C*kh*kw, L)
        out = torch.matmul(self.weight, cols)  # (B, out_channels, L)
        if self.bias is not None:
            out = out + self.bias.view(1, -1, 1)
        return out.view(b, self.out_channels, oh, ow)


def unfold_large_convs(model: nn.Module, min_kernel: int = 7, min_depth: int = 4096) -> int:
    """Replace, in place, each plain stride-1 ``Conv2d`` with a kernel of at least ``min_kernel`` and at least
    ``min_depth`` inputs per output (in_channels x kernel area) by :class:`UnfoldConv2d`; return how many.

    That is FCN-32s's ``fc6`` (25088 inputs), not ResNet's 7x7 stem (3 channels, stride 2), whose im2col
    would be large for little gain. Only for inference on the CPU.
    """
    replaced = 0
    for module in model.modules():
        for name, child in list(module.named_children()):
            if (
                type(child) is nn.Conv2d
                and child.groups == 1
                and min(child.kernel_size) >= min_kernel
                and child.stride == (1, 1)
                and child.padding_mode == "zeros"
                and isinstance(child.padding, tuple)
                and child.in_channels * child.kernel_size[0] * child.kernel_size[1] >= min_depth
            ):
                setattr(module, name, UnfoldConv2d(child))
                replaced += 1
    return replaced
