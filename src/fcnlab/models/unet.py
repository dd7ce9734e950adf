"""U-Net decoder on a torchvision ResNet34 encoder: a segmentation model that trains well from scratch.

The encoder is torchvision's ResNet34 (stem, ``layer1``-``layer4``; same module names and state-dict keys,
so ImageNet weights load as for the FCNs). The decoder follows the U-Net of Ronneberger et al. as
segmentation_models_pytorch builds it on ResNets: five blocks, each a x2 nearest upsampling, the
concatenation of the encoder's features at that stride (stride 16, 8, 4, 2; none at full resolution)
and two 3x3 convolutions with BatchNorm and ReLU, with 256/128/64/32/16 channels; then a 1x1 score layer.
Skips at every stride and BatchNorm everywhere are what let it train without ImageNet weights, where
FCN-8s's three linear score skips learn slowly.

The score layer starts at zero, as the FCNs' do. Sides that are not multiples of 32 are zero-padded at
the bottom/right and the logits cropped back (as :class:`fcnlab.models.fcn.FCN` does).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torchvision import models as tvm

from fcnlab.models.fcn import RESNET_TRUNK, score_layer
from fcnlab.models.registry import register_model

UNET_HEAD = ("decoder", "score")
DECODER_CHANNELS = (256, 128, 64, 32, 16)


def conv_bn_relu(in_channels: int, out_channels: int) -> nn.Sequential:
    """3x3 convolution (no bias: BatchNorm follows), BatchNorm, ReLU."""
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    )


class DecoderBlock(nn.Module):
    """x2 nearest upsampling, concatenation with the skip features, two conv-BN-ReLU."""

    def __init__(self, in_channels: int, skip_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv1 = conv_bn_relu(in_channels + skip_channels, out_channels)
        self.conv2 = conv_bn_relu(out_channels, out_channels)

    def forward(self, x: torch.Tensor, skip: torch.Tensor | None) -> torch.Tensor:
        x = F.interpolate(x, scale_factor=2.0, mode="nearest")
        if skip is not None:
            x = torch.cat([x, skip], dim=1)
        return self.conv2(self.conv1(x))


class UNetResNet34(nn.Module):
    """ResNet34 encoder + U-Net decoder; logits ``(B, num_classes, H, W)`` for any ``H x W``."""

    output_stride = 32
    HEAD = UNET_HEAD
    conv1: nn.Module  # torchvision's ResNet34 trunk, set in __init__ (so mypy knows they are modules)
    bn1: nn.Module
    relu: nn.Module
    maxpool: nn.Module
    layer1: nn.Module
    layer2: nn.Module
    layer3: nn.Module
    layer4: nn.Module

    def __init__(self, num_classes: int, decoder_channels: tuple[int, ...] = DECODER_CHANNELS) -> None:
        super().__init__()
        self.num_classes = num_classes
        resnet = tvm.resnet34(weights=None)
        for name in RESNET_TRUNK:
            setattr(self, name, getattr(resnet, name))
        # encoder channels at strides 16, 8, 4, 2 (skips) and 32 (the input of the first block)
        skips = (256, 128, 64, 64, 0)
        blocks = []
        in_ch = 512
        for skip, out_ch in zip(skips, decoder_channels, strict=True):
            blocks.append(DecoderBlock(in_ch, skip, out_ch))
            in_ch = out_ch
        self.decoder = nn.ModuleList(blocks)
        self.score = score_layer(in_ch, num_classes)

    def forward_aligned(self, x: torch.Tensor) -> torch.Tensor:
        """Logits for an input whose height and width are multiples of 32."""
        s2 = self.relu(self.bn1(self.conv1(x)))
        s4 = self.layer1(self.maxpool(s2))
        s8 = self.layer2(s4)
        s16 = self.layer3(s8)
        x = self.layer4(s16)
        for block, skip in zip(self.decoder, (s16, s8, s4, s2, None), strict=True):
            x = block(x, skip)
        return self.score(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Pad to a multiple of 32 at the bottom/right, run, crop the logits back to ``H x W``."""
        h, w = x.shape[-2], x.shape[-1]
        s = self.output_stride
        x = F.pad(x, (0, (s - w % s) % s, 0, (s - h % s) % s))
        return F.pad(self.forward_aligned(x), (0, w - x.shape[-1], 0, h - x.shape[-2]))


@register_model("unet_resnet34", task="segment", backbone="resnet34", head=UNET_HEAD)
def unet_resnet34(num_classes: int) -> UNetResNet34:
    """ResNet34 U-Net (decoder 256/128/64/32/16 channels, zero-initialised 1x1 score layer)."""
    return UNetResNet34(num_classes)
