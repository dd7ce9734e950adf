"""A segmentation model trained on reduced tiles, applied to full-size inputs.

A model trained with ``--input-size 128`` on 512x512 tiles has seen the tiles reduced 4x by an area filter.
:class:`ScaledInput` feeds it any input reduced by the same factor (area filter: the mean of each 4x4 block,
as the training cache holds) and upsamples its logits bilinearly to the input's size before any argmax, so
masks and the course's mIoU are always at full resolution (upsampling the class map instead would give
blocky edges and a lower IoU).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class ScaledInput(nn.Module):
    """Wraps a segmentation model: reduce the input ``reduction`` times (area filter), run, upsample back.

    The input is cut into ``k`` x ``k`` blocks (``k = reduction``), exactly the blocks of the training data;
    where ``k`` does not divide a side, the last block of that side is the mean of the pixels left over (an
    average pool with ``ceil_mode``, which ONNX expresses at any input size, unlike adaptive pooling).
    """

    def __init__(self, model: nn.Module, reduction: int) -> None:
        super().__init__()
        if int(reduction) != reduction or reduction < 1:
            raise ValueError(f"reduction must be a whole number >= 1, got {reduction}")
        self.model = model
        self.reduction = int(reduction)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``(B, C, H, W)`` for images ``(B, 3, H, W)`` of any size."""
        h, w = x.shape[-2:]
        small = F.avg_pool2d(x, self.reduction, ceil_mode=True)
        return F.interpolate(self.model(small), size=(h, w), mode="bilinear", align_corners=False)

    def extra_repr(self) -> str:
        return f"reduction={self.reduction}"


def with_input_reduction(model: nn.Module, reduction: int) -> nn.Module:
    """``model`` wrapped in :class:`ScaledInput` when ``reduction`` > 1 (and not wrapped already)."""
    if reduction <= 1 or isinstance(model, ScaledInput):
        return model
    return ScaledInput(model, reduction).train(model.training)


def checkpoint_reduction(ckpt: dict | None) -> int:
    """The input reduction a checkpoint's model was trained at (1: full size; checkpoints before it: 1)."""
    return int((ckpt or {}).get("input_reduction", 1))
