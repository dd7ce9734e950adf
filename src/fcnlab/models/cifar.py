"""P1 classifiers designed for 32x32 inputs: a CIFAR-style ResNet-18 and a small fast network.

``resnet18_cifar`` is torchvision's ResNet-18 with the CIFAR stem (a 3x3 stride-1 first convolution and
no max-pool), so the 32x32 image keeps its resolution through the first stage instead of shrinking to
8x8 before any residual block. ``airnet`` is a ResNet-9 / airbench-style network: a small stem, three
stages of ``conv -> max-pool -> BN -> GELU`` each followed by residual pairs of 3x3 convolutions, a global
max-pool and a scaled linear head. Both are plain ``nn.Module`` trees built from torch/torchvision parts.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from torchvision import models as tvm

from fcnlab.models.registry import register_model


@register_model("resnet18_cifar", task="classify", backbone="resnet18", head=("conv1", "fc"))
def resnet18_cifar(num_classes: int) -> nn.Module:
    """torchvision ``resnet18(num_classes=...)`` with ``conv1`` a 3x3 stride-1 convolution and no max-pool."""
    model = tvm.resnet18(weights=None, num_classes=num_classes)
    model.conv1 = nn.Conv2d(3, 64, kernel_size=3, stride=1, padding=1, bias=False)
    nn.init.kaiming_normal_(model.conv1.weight, mode="fan_out", nonlinearity="relu")  # as torchvision's stem
    model.maxpool = nn.Identity()
    return model


def _conv_bn(cin: int, cout: int, pool: bool = False) -> nn.Sequential:
    """``conv3x3 [-> maxpool2] -> BN -> GELU`` (pooling before BN: airbench's order, 4x cheaper BN)."""
    layers: list[nn.Module] = [nn.Conv2d(cin, cout, 3, padding=1, bias=False)]
    if pool:
        layers.append(nn.MaxPool2d(2))
    layers += [nn.BatchNorm2d(cout), nn.GELU()]
    return nn.Sequential(*layers)


class ResidualPair(nn.Module):
    """``x + f(x)`` with ``f`` two ``conv3x3 -> BN -> GELU`` layers of the same width."""

    def __init__(self, width: int):
        super().__init__()
        self.body = nn.Sequential(_conv_bn(width, width), _conv_bn(width, width))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class AirNet(nn.Module):
    """Small fast network for 32x32 images (ResNet-9 / airbench family).

    ``stem`` channels at full resolution, then one stage per entry of ``widths``: a widening convolution,
    a 2x2 max-pool, BN and GELU, followed by ``pairs[i]`` residual pairs. A global max-pool feeds
    ``fc``, whose output is multiplied by ``scale`` (a cooler softmax at initialisation trains faster
    with high learning rates; ResNet-9 uses 0.125).
    """

    def __init__(
        self,
        num_classes: int,
        widths: Sequence[int] = (32, 128, 128),
        stem: int = 24,
        pairs: Sequence[int] = (1, 1, 1),
        scale: float = 0.125,
    ):
        super().__init__()
        if len(pairs) != len(widths):
            raise ValueError(f"pairs {tuple(pairs)} needs one entry per stage of widths {tuple(widths)}")
        self.stem = _conv_bn(3, stem)
        stages: list[nn.Module] = []
        cin = stem
        for width, n in zip(widths, pairs, strict=True):
            stages.append(nn.Sequential(_conv_bn(cin, width, pool=True), *(ResidualPair(width) for _ in range(n))))
            cin = width
        self.stages = nn.Sequential(*stages)
        self.pool = nn.AdaptiveMaxPool2d(1)
        self.flatten = nn.Flatten()
        self.fc = nn.Linear(cin, num_classes)
        self.scale = scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.flatten(self.pool(self.stages(self.stem(x))))
        return self.fc(x) * self.scale


# oneDNN's NHWC kernels win here even at 32x32 (unlike VGG16-BN): docs/ENGINEERING.md, P1 laptop recipe search
@register_model("airnet", task="classify", backbone=None, cpu_channels_last=True)
def airnet(
    num_classes: int,
    widths: Sequence[int] = (32, 128, 128),
    stem: int = 24,
    pairs: Sequence[int] = (1, 1, 1),
    scale: float = 0.125,
) -> nn.Module:
    """:class:`AirNet`: a ResNet-9-style network for 32x32 images, trained from scratch.

    The defaults are the laptop recipe's network (``p1_laptop``): widths 32/128/128 with a residual pair
    in every stage (0.8M parameters). On two CPU cores it beat a 2.2x costlier 64/256/256 network at equal
    time (more epochs beat more width there). ResNet-9 is ``widths=(128, 256, 512), stem=64, pairs=(1, 0, 1)``.
    """
    return AirNet(num_classes, widths, stem, pairs, scale)
