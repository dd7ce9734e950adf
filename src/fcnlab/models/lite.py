"""Small segmentation networks for CPUs: a residual encoder to stride 32 with three heads.

Land cover is told apart by colour and texture over tens of pixels, so on a laptop these models see tiles
reduced 4x (``--input-size 128``; :class:`fcnlab.models.scaled.ScaledInput` brings their logits back to
the input's size). The encoder, :class:`LiteTrunk`, is a stride-2 stem and five stages (strides 2-32), each
a widening ``conv3x3 stride 2 -> BN -> ReLU`` followed by residual pairs of dense 3x3 convolutions (on two
CPU cores dense 3x3 convolutions at small widths run faster per FLOP than depthwise ones, and bf16 plus
channels-last speeds them up further). Three heads share it:

* ``fpn_lite``: an FPN-style decoder (lateral 1x1 convolutions, top-down sums, one 3x3 fusion at stride 4,
  logits upsampled bilinearly); ``fpn_lite_full`` adds a residual block at stride 2; ``fpn_lite16`` stops
  the encoder at stride 16 (on 128x128 tiles the stride-32 stage sees 4x4
  pixels and holds half the parameters; without it the model overfit less and scored higher);
  ``fpn_lite16_s2`` scores at stride 2; ``fpn_lite16_ppm``, the laptop recipe's model, adds pyramid pooling
  of the whole tile.
* ``fcn32s_lite`` / ``fcn8s_lite``: the homework's FCN-32s and FCN-8s heads (:mod:`fcnlab.models.fcn`) on
  the same encoder, so a student without a GPU can measure the effect of the skips; ``*_lite_patch`` put them on
  a 4x4 stride-4 patch stem, for tiles of twice the side at about the same cost; ``*_lite_ppm`` end the encoder
  in pyramid pooling of the stride-32 map.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from fcnlab.models.fcn import FCN, FCN8S_HEAD, FCN32S_HEAD, FCN8sHead, FCN32sHead
from fcnlab.models.registry import register_model

#: Channels of the stem and of the stages at strides 2, 4, 8, 16 and 32.
WIDTHS = (32, 32, 64, 128, 256, 256)
#: Residual blocks per stage: none at stride 2, where a block (the FLOPs of a deeper one, but 32 channels on 64x64
#: pixels) made training 1.4x slower on one CPU thread (benchmarks/p2_laptop_models_speed.py).
BLOCKS = (0, 1, 1, 1, 1)
#: ``fpn_lite16``: the same stem and stages to stride 16, no stride-32 stage.
WIDTHS16, BLOCKS16 = WIDTHS[:5], BLOCKS[:4]


def conv_bn_relu(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
    """``conv3x3 -> BN -> ReLU`` (no bias: BN has one)."""
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)
    )


class BasicBlock(nn.Module):
    """``relu(x + bn(conv(relu(bn(conv(x))))))``: torchvision's ResNet basic block at one width.

    The last BN's scale starts at zero, so each block starts as the identity (Goyal et al. 2017), which
    lets a from-scratch network take a high learning rate from the first steps.
    """

    def __init__(self, width: int):
        super().__init__()
        self.conv1 = nn.Conv2d(width, width, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, width, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(width)
        nn.init.zeros_(self.bn2.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu(self.bn1(self.conv1(x)), inplace=True)
        return F.relu(x + self.bn2(self.conv2(y)), inplace=True)


class PyramidContext(nn.ModuleList):
    """PSPNet's pyramid pooling: features averaged over ``b x b`` grids of the whole tile for each of ``bins``,
    each brought to ``cout`` channels by a 1x1 convolution and ReLU, added (upsampled bilinearly) to a map.

    The averages are taken on the features resized (bilinear) to ``grid`` pixels a side with fixed pooling windows,
    not by adaptive pooling, which ONNX cannot express at a dynamic size; at the grid's own size the resize is the
    identity and the averages are adaptive pooling's exact ones. No BN: a 1x1 grid has one value per channel and
    tile. A list of branches (``context.0``, ``context.1``, ...), so checkpoints name them as before.
    """

    def __init__(self, cin: int, cout: int, bins: Sequence[int], grid: int) -> None:
        bins = tuple(int(b) for b in bins)
        if not bins or any(b < 1 or grid % b for b in bins):
            raise ValueError(f"context_bins are grid sides that divide context_grid ({grid}), got {bins}")
        super().__init__(nn.Sequential(nn.AvgPool2d(grid // b), nn.Conv2d(cin, cout, 1), nn.ReLU(True)) for b in bins)
        self.grid = grid

    def add_to(self, y: torch.Tensor, features: torch.Tensor) -> torch.Tensor:
        """``y`` plus each branch's pooled ``features``, upsampled to ``y``'s size."""
        size, g = y.shape[-2:], self.grid
        grid = F.interpolate(features, size=(g, g), mode="bilinear", align_corners=False)
        for branch in self:
            y = y + F.interpolate(branch(grid), size=size, mode="bilinear", align_corners=False)
        return y


class LiteTrunk(FCN):
    """The encoder: ``stem`` (stride 2) and ``stage1``-``stage5`` (strides 2, 4, 8, 16, 32).

    ``widths`` are the stem's and the stages' channels; ``blocks`` the residual blocks per stage. Five stages
    for the FCN heads; an FPN decoder also takes four (``stage1``-``stage4``, to stride 16). With
    ``context_bins`` the deepest stage's output gets :class:`PyramidContext` (at its own width; averages on a
    ``context_grid``-pixel map, the stride-32 map of a 128-pixel tile at 4), for the FCN heads' score layers.
    """

    def __init__(
        self,
        num_classes: int,
        learn_upsampling: bool = True,
        widths: Sequence[int] = WIDTHS,
        blocks: Sequence[int] = BLOCKS,
        stem_stride: int = 2,
        context_bins: Sequence[int] = (),
        context_grid: int = 4,
    ) -> None:
        if len(blocks) not in (4, 5) or len(widths) != len(blocks) + 1:
            raise ValueError(
                f"widths needs one entry more than blocks (stem + 4 or 5 stages), got {tuple(widths)}, {tuple(blocks)}"
            )
        if stem_stride not in (2, 4):
            raise ValueError(f"stem_stride must be 2 or 4, got {stem_stride}")
        self.widths, self.blocks, self.stem_stride = tuple(widths), tuple(blocks), stem_stride
        self.trunk_context = (tuple(context_bins), context_grid)
        self.trunk_channels = (self.widths[-3], self.widths[-2], self.widths[-1])
        super().__init__(num_classes, learn_upsampling)

    def _build_trunk(self) -> None:
        if self.stem_stride == 4:  # a 4x4 patch stem: a tile twice the side costs what the stride-2 stem's did
            self.stem = nn.Sequential(
                nn.Conv2d(3, self.widths[0], 4, stride=4, bias=False), nn.BatchNorm2d(self.widths[0]), nn.ReLU(True)
            )
        else:
            self.stem = conv_bn_relu(3, self.widths[0], stride=2)
        for i in range(len(self.blocks)):
            stride = 1 if i == 0 else 2  # stage1 works at the stem's stride 2
            if i == 0 and self.blocks[0] == 0 and self.widths[0] == self.widths[1]:
                self.stage1 = nn.Identity()  # the stem alone at stride 2: the most costly resolution
                continue
            layers: list[nn.Module] = [conv_bn_relu(self.widths[i], self.widths[i + 1], stride)]
            layers += [BasicBlock(self.widths[i + 1]) for _ in range(self.blocks[i])]
            setattr(self, f"stage{i + 1}", nn.Sequential(*layers))
        bins, grid = self.trunk_context
        if bins:
            self.context = PyramidContext(self.widths[-1], self.widths[-1], bins, grid)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def pyramid(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The stages' outputs, at strides 2, 4, 8, 16 (and 32); with the patch stem, 4, 8, 16, 32."""
        x = self.stem(x)
        out = []
        for i in range(len(self.blocks)):
            x = getattr(self, f"stage{i + 1}")(x)
            out.append(x)
        if self.trunk_context[0]:
            out[-1] = self.context.add_to(out[-1], out[-1])
        return out

    def stages(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Return the features at strides 8, 16 and 32."""
        p = self.pyramid(x)
        if self.stem_stride * 2 ** (len(p) - 1) != 32:
            raise ValueError("the FCN heads need the stride-32 stage: give LiteTrunk five stages (four: patch stem)")
        return p[-3], p[-2], p[-1]


class FPNLite(LiteTrunk):
    """:class:`LiteTrunk` with an FPN-style decoder: logits at stride 4, upsampled bilinearly to the input.

    Lateral 1x1 convolutions bring the stride-4 to stride-32 (or 16) features to ``decoder`` channels; each level
    adds the one above it upsampled x2 (nearest); a ``conv3x3 -> BN -> ReLU`` fuses the stride-4 sum and a
    zero-initialised 1x1 ``score`` layer gives the classes. With ``context_bins`` (PSPNet's pyramid pooling) the
    deepest features are also averaged over ``b x b`` grids of the whole tile, each brought to ``decoder``
    channels by a 1x1 convolution and ReLU and added, upsampled bilinearly, to the deepest lateral
    (:class:`PyramidContext`, on a ``context_grid`` map: 8x8 is a 128-pixel tile at stride 16): the tile's make-up
    (how much of it is farmland, forest, water) reaches every pixel.
    """

    HEAD = ("lateral", "context", "fuse", "fine", "score")

    def __init__(
        self,
        num_classes: int,
        widths: Sequence[int] = WIDTHS,
        blocks: Sequence[int] = BLOCKS,
        decoder: int = 64,
        out_stride: int = 4,
        context_bins: Sequence[int] = (),
        context_grid: int = 8,
    ) -> None:
        if out_stride not in (2, 4):
            raise ValueError(f"out_stride must be 2 or 4, got {out_stride}")
        self.decoder, self.out_stride = decoder, out_stride
        self.context_bins, self.context_grid = tuple(int(b) for b in context_bins), context_grid
        super().__init__(num_classes, True, widths, blocks)

    def _build_head(self, num_classes: int, learn_upsampling: bool) -> None:
        self.lateral = nn.ModuleList(nn.Conv2d(c, self.decoder, 1) for c in self.widths[2:])
        if self.context_bins:
            self.context = PyramidContext(self.widths[-1], self.decoder, self.context_bins, self.context_grid)
        self.fuse = conv_bn_relu(self.decoder, self.decoder)
        width = self.decoder
        if self.out_stride == 2:
            # Half the decoder's channels at stride 2: the stride-4 fusion brought down by a 1x1, upsampled x2 and
            # added to the stride-2 features' lateral, fused by one 3x3.
            width = self.decoder // 2
            self.fine = nn.ModuleDict(
                {
                    "reduce": nn.Conv2d(self.decoder, width, 1),
                    "lateral": nn.Conv2d(self.widths[1], width, 1),
                    "fuse": conv_bn_relu(width, width),
                }
            )
        self.score = nn.Conv2d(width, num_classes, 1)
        nn.init.zeros_(self.score.weight)
        nn.init.zeros_(self.score.bias)  # type: ignore[arg-type]

    def forward_aligned(self, x: torch.Tensor) -> torch.Tensor:
        """Top-down sum of the lateral features from the deepest stride to stride 4, fused (and, with
        ``out_stride=2``, refined with the stride-2 features), scored and upsampled bilinearly to the input."""
        pyramid = self.pyramid(x)
        feats = pyramid[1:]  # strides 4, 8, 16 (, 32)
        y = self.lateral[-1](feats[-1])
        if self.context_bins:
            y = self.context.add_to(y, feats[-1])
        for lateral, f in zip(reversed(self.lateral[:-1]), reversed(feats[:-1]), strict=True):
            y = lateral(f) + F.interpolate(y, size=f.shape[-2:], mode="nearest")
        y = self.fuse(y)
        if self.out_stride == 2:
            fine = self.fine
            y = F.interpolate(fine["reduce"](y), size=pyramid[0].shape[-2:], mode="nearest")
            y = fine["fuse"](y + fine["lateral"](pyramid[0]))
        logits = self.score(y)
        return F.interpolate(logits, size=x.shape[-2:], mode="bilinear", align_corners=False)


class FCN32sLite(LiteTrunk, FCN32sHead):
    """FCN-32s head (one stride-32 score layer, x32 bilinear upsampler) on :class:`LiteTrunk`."""


class FCN8sLite(LiteTrunk, FCN8sHead):
    """FCN-8s head (stride-32/16/8 score layers fused by x2, x2, x8 upsamplers) on :class:`LiteTrunk`."""


# oneDNN's NHWC kernels beat NCHW for these convolution-only networks on the CPU at 128x128 inputs
@register_model("fpn_lite", task="segment", backbone=None, cpu_channels_last=True)
def fpn_lite(
    num_classes: int, widths: Sequence[int] = WIDTHS, blocks: Sequence[int] = BLOCKS, decoder: int = 64
) -> nn.Module:
    """:class:`FPNLite` to stride 32 (about 3.8M parameters), trained from scratch."""
    return FPNLite(num_classes, widths, blocks, decoder)


@register_model("fpn_lite_full", task="segment", backbone=None, cpu_channels_last=True)
def fpn_lite_full(
    num_classes: int, widths: Sequence[int] = WIDTHS, blocks: Sequence[int] = (1, 1, 1, 1, 1), decoder: int = 64
) -> nn.Module:
    """:class:`FPNLite` with a residual block at every stage, stride 2 included (0.7x the speed of ``fpn_lite``
    on one CPU thread: its 32 channels on 64x64 pixels use the cores worse than the deeper, wider blocks)."""
    return FPNLite(num_classes, widths, blocks, decoder)


@register_model("fpn_lite16", task="segment", backbone=None, cpu_channels_last=True)
def fpn_lite16(
    num_classes: int, widths: Sequence[int] = WIDTHS16, blocks: Sequence[int] = BLOCKS16, decoder: int = 64
) -> nn.Module:
    """:class:`FPNLite` with the encoder stopped at stride 16 (2.0M parameters); ``p2_laptop``'s model
    until ``fpn_lite16_ppm``."""
    return FPNLite(num_classes, widths, blocks, decoder)


@register_model("fpn_lite16_s2", task="segment", backbone=None, cpu_channels_last=True)
def fpn_lite16_s2(
    num_classes: int, widths: Sequence[int] = WIDTHS16, blocks: Sequence[int] = BLOCKS16, decoder: int = 64
) -> nn.Module:
    """``fpn_lite16`` with its logits at stride 2 (the stride-4 fusion refined with the stem's features): on
    128x128 tiles, logits at 64x64 rather than 32x32, whose ceiling on the validation masks is 0.987 mIoU
    rather than 0.968 (benchmarks/p2_output_stride_ceiling.py). In ``p2_laptop`` its epochs took 21 % longer and
    scored no better (docs/BENCHMARKS.md, "How fine must the logits be?"): the recipe keeps ``fpn_lite16``."""
    return FPNLite(num_classes, widths, blocks, decoder, out_stride=2)


@register_model("fpn_lite16_ppm", task="segment", backbone=None, cpu_channels_last=True)
def fpn_lite16_ppm(
    num_classes: int,
    widths: Sequence[int] = WIDTHS16,
    blocks: Sequence[int] = BLOCKS16,
    decoder: int = 64,
    context_bins: Sequence[int] = (1, 2, 4),
) -> nn.Module:
    """``fpn_lite16`` with pyramid pooling of its stride-16 features over 1x1, 2x2 and 4x4 grids of the tile
    (PSPNet's context module, 49k parameters more; on a 128x128 tile the stride-16 map is 8x8): ``p2_laptop``'s
    model, ahead of ``fpn_lite16`` at every epoch of a same-seed pair at no measurable cost (docs/BENCHMARKS.md)."""
    return FPNLite(num_classes, widths, blocks, decoder, context_bins=context_bins)


@register_model("fcn32s_lite", task="segment", backbone=None, head=FCN32S_HEAD, cpu_channels_last=True)
def fcn32s_lite(
    num_classes: int, learn_upsampling: bool = False, widths: Sequence[int] = WIDTHS, blocks: Sequence[int] = BLOCKS
) -> nn.Module:
    """FCN-32s on the laptop encoder; the x32 upsampler is frozen bilinear unless ``learn_upsampling``."""
    return FCN32sLite(num_classes, learn_upsampling, widths, blocks)


@register_model("fcn8s_lite", task="segment", backbone=None, head=FCN8S_HEAD, cpu_channels_last=True)
def fcn8s_lite(
    num_classes: int, learn_upsampling: bool = True, widths: Sequence[int] = WIDTHS, blocks: Sequence[int] = BLOCKS
) -> nn.Module:
    """FCN-8s on the laptop encoder; upsamplers start bilinear and are learned unless disabled."""
    return FCN8sLite(num_classes, learn_upsampling, widths, blocks)


@register_model("fcn32s_lite_ppm", task="segment", backbone=None, head=FCN32S_HEAD, cpu_channels_last=True)
def fcn32s_lite_ppm(
    num_classes: int,
    learn_upsampling: bool = False,
    widths: Sequence[int] = WIDTHS,
    blocks: Sequence[int] = BLOCKS,
    context_bins: Sequence[int] = (1, 2),
) -> nn.Module:
    """``fcn32s_lite`` whose encoder ends in pyramid pooling of the stride-32 features over 1x1 and 2x2 grids of the
    tile (:class:`PyramidContext` at 256 channels, 131k parameters; the map of a 128-pixel tile is 4x4)."""
    return FCN32sLite(num_classes, learn_upsampling, widths, blocks, context_bins=context_bins)


@register_model("fcn8s_lite_ppm", task="segment", backbone=None, head=FCN8S_HEAD, cpu_channels_last=True)
def fcn8s_lite_ppm(
    num_classes: int,
    learn_upsampling: bool = True,
    widths: Sequence[int] = WIDTHS,
    blocks: Sequence[int] = BLOCKS,
    context_bins: Sequence[int] = (1, 2),
) -> nn.Module:
    """``fcn8s_lite`` on the encoder of ``fcn32s_lite_ppm`` (pyramid pooling of the stride-32 features): the
    homework's pair with the whole tile's context in the shared encoder, the skips still the only difference. In
    ``p2_laptop_fcn8s``'s budget on one core it was ahead of ``fcn8s_lite`` by 0.0015-0.005 per epoch from epoch 8
    and by 0.004 at the end with one epoch more (docs/BENCHMARKS.md): the recipes keep the plain encoder."""
    return FCN8sLite(num_classes, learn_upsampling, widths, blocks, context_bins=context_bins)


#: The patch-stem trunk: stride 4 at once, then stages at strides 4 (none), 8, 16 and 32, as wide as fcn*_lite's
#: stages at the same feature sizes on a tile of half the side.
WIDTHS_PATCH, BLOCKS_PATCH = WIDTHS[:5], BLOCKS[:4]


@register_model("fcn32s_lite_patch", task="segment", backbone=None, head=FCN32S_HEAD, cpu_channels_last=True)
def fcn32s_lite_patch(
    num_classes: int,
    learn_upsampling: bool = False,
    widths: Sequence[int] = WIDTHS_PATCH,
    blocks: Sequence[int] = BLOCKS_PATCH,
) -> nn.Module:
    """FCN-32s on the patch-stem trunk (a 4x4 stride-4 stem): for 256x256 tiles at the cost of ``fcn32s_lite`` on
    128x128 ones, so its stride-32 logits are 8x8 rather than 4x4."""
    return FCN32sLite(num_classes, learn_upsampling, widths, blocks, stem_stride=4)


@register_model("fcn8s_lite_patch", task="segment", backbone=None, head=FCN8S_HEAD, cpu_channels_last=True)
def fcn8s_lite_patch(
    num_classes: int,
    learn_upsampling: bool = True,
    widths: Sequence[int] = WIDTHS_PATCH,
    blocks: Sequence[int] = BLOCKS_PATCH,
) -> nn.Module:
    """FCN-8s on the patch-stem trunk: for 256x256 tiles at about the cost of ``fcn8s_lite`` on 128x128 ones, so its
    stride-8 logits are 32x32 rather than 16x16 (a ceiling of 0.968 mIoU on the validation masks, not 0.924:
    benchmarks/p2_output_stride_ceiling.py). Ahead of ``fcn8s_lite`` per epoch, behind in ``p2_laptop_fcn8s``'s
    budget (its epochs took 20 % longer; docs/BENCHMARKS.md, "How fine must the logits be?")."""
    return FCN8sLite(num_classes, learn_upsampling, widths, blocks, stem_stride=4)
