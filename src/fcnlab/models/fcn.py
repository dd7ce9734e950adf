"""Fully convolutional networks (Long et al. 2015) assembled from torchvision backbones.

Four registered models share the same building blocks: a trunk (VGG16-BN ``features`` + ``fc6``/``fc7``
as convolutions, or the ResNet34 stem and ``layer1``-``layer4``) that yields features at strides
8/16/32, and a head (FCN-32s: one score layer and a x32 upsampler; FCN-8s: three score layers fused
with x2, x2 and x8 upsamplers).

Geometry (no Caffe-style ``padding=100`` and crop): for inputs whose sides are multiples of 32, fc6 is a
7x7 convolution with padding 3 and each upsampler has kernel 2f, stride f, padding f/2, so the logits
have exactly the input size. Other sizes are zero-padded at the bottom/right to the next multiple of
32 (zero is the mean pixel after normalisation), run, and the logits cropped back to ``H x W``.

Score layers start at zero (step 0 predicts all zeros and the skips add nothing, while gradients
still reach the score weights); upsamplers start as diagonal bilinear kernels.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torchvision import models as tvm

from fcnlab.models.registry import register_model
from fcnlab.models.upsampling import bilinear_upsampler

#: Indices of the max-pool layers closing VGG16-BN blocks 3, 4 and 5 in ``features``.
VGG_POOL3, VGG_POOL4, VGG_POOL5 = 23, 33, 43
#: FCN state-dict keys -> torchvision ``vgg16_bn`` keys (fc6/fc7 are VGG's first two Linear layers).
VGG_FC_RENAMES = {
    "fc6.weight": "classifier.0.weight",
    "fc6.bias": "classifier.0.bias",
    "fc7.weight": "classifier.3.weight",
    "fc7.bias": "classifier.3.bias",
}
RESNET_TRUNK = ("conv1", "bn1", "relu", "maxpool", "layer1", "layer2", "layer3", "layer4")
FCN32S_HEAD = ("score", "upsample_32x")
FCN8S_HEAD = ("scores1", "scores2", "scores3", "upsample_2x", "upsample_4x", "upsample_8x")


def vgg16_bn_features() -> nn.Sequential:
    """torchvision's VGG16-BN ``features``: the same modules, state-dict keys and initialisation as
    ``torchvision.models.vgg16_bn().features``, without building (and throwing away) its 120M-parameter
    classifier, which takes most of the ~1.6 s that ``vgg16_bn()`` needs on a CPU."""
    features = tvm.vgg.make_layers(tvm.vgg.cfgs["D"], batch_norm=True)
    for m in features.modules():  # torchvision's VGG initialisation
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            nn.init.zeros_(m.bias)  # type: ignore[arg-type]  # VGG's convolutions have biases
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
    return features


def score_layer(in_channels: int, num_classes: int) -> nn.Conv2d:
    """A 1x1 convolution to class scores, weight and bias initialised to zero."""
    conv = nn.Conv2d(in_channels, num_classes, 1)
    nn.init.zeros_(conv.weight)
    nn.init.zeros_(conv.bias)  # type: ignore[arg-type]
    return conv


class FCN(nn.Module):
    """Base class: pads the input to a multiple of :attr:`output_stride`, runs, crops the logits back.

    Subclasses build a trunk (``_build_trunk``, setting :attr:`trunk_channels` = channels at strides
    8/16/32 and :attr:`skip_scales` for the stride-16/8 skips), a head (``_build_head``), and implement
    ``stages(x) -> (p3, p4, p5)`` and ``forward_aligned(x)`` for inputs whose sides are multiples of 32.
    """

    output_stride = 32
    HEAD: tuple[str, ...] = ()
    trunk_channels: tuple[int, int, int]
    skip_scales: tuple[float, float] = (1.0, 1.0)

    def __init__(self, num_classes: int, learn_upsampling: bool) -> None:
        super().__init__()
        self.num_classes = num_classes
        self._build_trunk()
        self._build_head(num_classes, learn_upsampling)

    def _build_trunk(self) -> None:
        raise NotImplementedError

    def _build_head(self, num_classes: int, learn_upsampling: bool) -> None:
        raise NotImplementedError

    def stages(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Return the trunk's features at strides 8, 16 and 32."""
        raise NotImplementedError

    def forward_aligned(self, x: torch.Tensor) -> torch.Tensor:
        """Logits for an input whose height and width are multiples of :attr:`output_stride`."""
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return logits ``(B, num_classes, H, W)`` for images ``(B, 3, H, W)`` of any size.

        Sides that are not multiples of 32 are zero-padded at the bottom/right to the next multiple,
        and the logits are cropped back to ``H x W``.
        """
        h, w = x.shape[-2], x.shape[-1]
        s = self.output_stride
        x = F.pad(x, (0, (s - w % s) % s, 0, (s - h % s) % s))
        # crop back with a negative pad: unlike slicing, it exports with dynamic H/W (torch.export, ONNX)
        return F.pad(self.forward_aligned(x), (0, w - x.shape[-1], 0, h - x.shape[-2]))


class VGGTrunk(FCN):
    """VGG16-BN ``features`` (torchvision's modules, so its printout and weights fit) + fc6/fc7 convs."""

    trunk_channels = (256, 512, 4096)
    skip_scales = (0.01, 0.0001)  # pool4, pool3: the paper's FCN-8s "at once" scaling of raw VGG features

    def _build_trunk(self) -> None:
        self.features = vgg16_bn_features()
        self.fc6 = nn.Conv2d(512, 4096, 7, padding=3)
        self.relu6 = nn.ReLU(inplace=True)
        self.drop6 = nn.Dropout2d()
        self.fc7 = nn.Conv2d(4096, 4096, 1)
        self.relu7 = nn.ReLU(inplace=True)
        self.drop7 = nn.Dropout2d()

    def stages(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Return (pool3, pool4, fc7 output) at strides 8, 16, 32."""
        pool3 = pool4 = x
        for i, layer in enumerate(self.features):
            x = layer(x)
            if i == VGG_POOL3:
                pool3 = x
            elif i == VGG_POOL4:
                pool4 = x
        x = self.drop6(self.relu6(self.fc6(x)))
        x = self.drop7(self.relu7(self.fc7(x)))
        return pool3, pool4, x


class ResNetTrunk(FCN):
    """ResNet34 stem and ``layer1``-``layer4``, reused from torchvision (same state-dict keys)."""

    trunk_channels = (128, 256, 512)
    conv1: nn.Module  # torchvision's, set by _build_trunk (so mypy knows they are modules)
    bn1: nn.Module
    relu: nn.Module
    maxpool: nn.Module
    layer1: nn.Module
    layer2: nn.Module
    layer3: nn.Module
    layer4: nn.Module

    def _build_trunk(self) -> None:
        resnet = tvm.resnet34(weights=None)
        for name in RESNET_TRUNK:
            setattr(self, name, getattr(resnet, name))

    def stages(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Return (layer2, layer3, layer4) outputs at strides 8, 16, 32."""
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        p3 = self.layer2(self.layer1(x))
        p4 = self.layer3(p3)
        return p3, p4, self.layer4(p4)


class FCN32sHead(FCN):
    """FCN-32s head: ``score`` on the stride-32 features and one x32 bilinear upsampler."""

    HEAD = FCN32S_HEAD

    def _build_head(self, num_classes: int, learn_upsampling: bool) -> None:
        self.score = score_layer(self.trunk_channels[2], num_classes)
        self.upsample_32x = bilinear_upsampler(num_classes, 32, learnable=learn_upsampling)

    def forward_aligned(self, x: torch.Tensor) -> torch.Tensor:
        """``upsample_32x(score(p5))``."""
        return self.upsample_32x(self.score(self.stages(x)[2]))


class FCN8sHead(FCN):
    """FCN-8s head: ``up8(up4(up2(scores1(p5)) + scores2(p4)) + scores3(p3))``.

    ``upsample_4x`` is the second x2 step (it brings stride 16 to stride 8; the name is the seed's).
    """

    HEAD = FCN8S_HEAD

    def _build_head(self, num_classes: int, learn_upsampling: bool) -> None:
        c3, c4, c5 = self.trunk_channels
        self.scores1 = score_layer(c5, num_classes)
        self.scores2 = score_layer(c4, num_classes)
        self.scores3 = score_layer(c3, num_classes)
        self.upsample_2x = bilinear_upsampler(num_classes, 2, learnable=learn_upsampling)
        self.upsample_4x = bilinear_upsampler(num_classes, 2, learnable=learn_upsampling)
        self.upsample_8x = bilinear_upsampler(num_classes, 8, learnable=learn_upsampling)

    def forward_aligned(self, x: torch.Tensor) -> torch.Tensor:
        """Fuse the stride-32, 16 and 8 scores (skips scaled by :attr:`skip_scales`), upsample x8."""
        p3, p4, p5 = self.stages(x)
        s4, s3 = self.skip_scales
        if s4 != 1.0:
            p4 = p4 * s4
        if s3 != 1.0:
            p3 = p3 * s3
        x = self.upsample_2x(self.scores1(p5)) + self.scores2(p4)
        x = self.upsample_4x(x) + self.scores3(p3)
        return self.upsample_8x(x)


class FCN32sVGG16(VGGTrunk, FCN32sHead):
    """VGG16-BN FCN-32s (the seed's P2 baseline)."""


class FCN8sResNet34(ResNetTrunk, FCN8sHead):
    """ResNet34 FCN-8s (the seed's improved P2 model)."""


class FCN32sResNet34(ResNetTrunk, FCN32sHead):
    """Ablation: ResNet34 trunk with the FCN-32s head."""


class FCN8sVGG16(VGGTrunk, FCN8sHead):
    """Ablation: VGG16-BN FCN-8s with pool3/pool4 skips scaled by 0.0001/0.01 (the paper's recipe)."""


@register_model("fcn32s_vgg16", task="segment", backbone="vgg16_bn", head=FCN32S_HEAD, renames=VGG_FC_RENAMES)
def fcn32s_vgg16(num_classes: int, learn_upsampling: bool = False) -> FCN:
    """VGG16-BN FCN-32s; the x32 upsampler is frozen bilinear unless ``learn_upsampling``."""
    return FCN32sVGG16(num_classes, learn_upsampling)


@register_model("fcn8s_resnet34", task="segment", backbone="resnet34", head=FCN8S_HEAD)
def fcn8s_resnet34(num_classes: int, learn_upsampling: bool = True) -> FCN:
    """ResNet34 FCN-8s; upsamplers start bilinear and are learned (as the seed) unless disabled."""
    return FCN8sResNet34(num_classes, learn_upsampling)


@register_model("fcn32s_resnet34", task="segment", backbone="resnet34", head=FCN32S_HEAD)
def fcn32s_resnet34(num_classes: int, learn_upsampling: bool = False) -> FCN:
    """ResNet34 FCN-32s ablation; frozen bilinear x32 upsampler unless ``learn_upsampling``."""
    return FCN32sResNet34(num_classes, learn_upsampling)


@register_model("fcn8s_vgg16", task="segment", backbone="vgg16_bn", head=FCN8S_HEAD, renames=VGG_FC_RENAMES)
def fcn8s_vgg16(num_classes: int, learn_upsampling: bool = True) -> FCN:
    """VGG16-BN FCN-8s ablation; learned bilinear-initialised upsamplers unless disabled."""
    return FCN8sVGG16(num_classes, learn_upsampling)
