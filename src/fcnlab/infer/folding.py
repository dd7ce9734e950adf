"""Exact inference shortcut for VGG classifiers on 32x32 images (P1).

At 32x32 the VGG16-BN features are 1x1, and ``AdaptiveAvgPool2d((7, 7))`` copies that pixel 49 times
into the 25088 inputs of ``Linear(25088, 4096)``. Summing the 49 weight blocks of each channel gives
an equivalent ``Linear(512, 4096)``: 49x fewer multiply-adds in the first layer and no 7x7 copy.
"""

from __future__ import annotations

import copy
from typing import cast

import torch
from torch import nn


class FoldedVGG(nn.Module):
    """Eval-only VGG classifier whose first Linear is folded for 1x1 feature maps.

    ``forward`` uses ``fc_folded`` when the features are 1x1 and falls back to the original
    avgpool + ``classifier`` otherwise, so it is exact for every input size. ``classifier[-1]`` is still
    the last ``Linear``, so :func:`fcnlab.models.classifiers.penultimate_features` works unchanged.
    """

    def __init__(self, features: nn.Module, avgpool: nn.Module, classifier: nn.Sequential) -> None:
        super().__init__()
        first = classifier[0]
        if not isinstance(first, nn.Linear) or not isinstance(avgpool, nn.AdaptiveAvgPool2d):
            raise TypeError("expected a torchvision VGG (avgpool=AdaptiveAvgPool2d, classifier[0]=Linear)")
        out_size = cast("int | tuple[int, int]", avgpool.output_size)  # VGG's is (7, 7)
        cells = out_size * out_size if isinstance(out_size, int) else out_size[0] * out_size[1]
        channels = first.in_features // cells
        self.features = features
        self.avgpool = avgpool
        self.fc_folded = nn.Linear(channels, first.out_features)
        with torch.no_grad():
            self.fc_folded.weight.copy_(first.weight.view(first.out_features, channels, cells).sum(-1))
            self.fc_folded.bias.copy_(first.bias)
        self.classifier = classifier
        self.requires_grad_(False)
        super().train(False)

    def train(self, mode: bool = True) -> FoldedVGG:
        """Only ``eval()`` / ``train(False)`` is allowed: the folded weights are not trainable."""
        if mode:
            raise RuntimeError("FoldedVGG is inference-only; train the original (unfolded) model")
        return super().train(False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``(B, num_classes)``; folded path for 1x1 features, the original path otherwise."""
        x = self.features(x)
        if x.shape[-2] == 1 and x.shape[-1] == 1:
            return self.classifier[1:](self.fc_folded(torch.flatten(x, 1)))
        return self.classifier(torch.flatten(self.avgpool(x), 1))


def fold_vgg_classifier(model: nn.Module) -> FoldedVGG:
    """Return a folded, eval-only deep copy of a torchvision VGG classifier; ``model`` is not changed."""
    for attr in ("features", "avgpool", "classifier"):
        if not hasattr(model, attr):
            raise TypeError(f"fold_vgg_classifier needs a torchvision VGG; {type(model).__name__} has no {attr!r}")
    parts = (copy.deepcopy(getattr(model, a)) for a in ("features", "avgpool", "classifier"))
    return FoldedVGG(*parts)


def foldable(model_name: str, image_size: int) -> bool:
    """Whether :func:`fold_vgg_classifier` applies: a VGG classifier (no FCN name starts with ``vgg``) at 32x32."""
    return model_name.startswith("vgg") and image_size == 32
