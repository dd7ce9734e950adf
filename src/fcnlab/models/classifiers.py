"""P1 classifiers: torchvision VGG16-BN and ResNets with a new last layer, plus penultimate features.

The models are plain torchvision modules (only the last ``Linear`` is replaced), so they print
exactly like torchvision's and load its state dicts unchanged.
"""

from __future__ import annotations

import torch
from torch import nn
from torchvision import models as tvm

from fcnlab.models.registry import register_model


@register_model("vgg16_bn", task="classify", backbone="vgg16_bn", head=("classifier.6",))
def vgg16_bn(num_classes: int) -> nn.Module:
    """torchvision ``vgg16_bn(weights=None)`` with ``classifier[6] = Linear(4096, num_classes)``."""
    model = tvm.vgg16_bn(weights=None)
    model.classifier[6] = nn.Linear(4096, num_classes)
    return model


def _resnet(arch: str, num_classes: int) -> nn.Module:
    model = getattr(tvm, arch)(weights=None)
    model.fc = nn.Linear(model.fc.in_features, num_classes)
    return model


@register_model("resnet18", task="classify", backbone="resnet18", head=("fc",))
def resnet18(num_classes: int) -> nn.Module:
    """torchvision ``resnet18`` with ``fc = Linear(512, num_classes)``."""
    return _resnet("resnet18", num_classes)


@register_model("resnet34", task="classify", backbone="resnet34", head=("fc",))
def resnet34(num_classes: int) -> nn.Module:
    """torchvision ``resnet34`` with ``fc = Linear(512, num_classes)``."""
    return _resnet("resnet34", num_classes)


@register_model("resnet50", task="classify", backbone="resnet50", head=("fc",))
def resnet50(num_classes: int) -> nn.Module:
    """torchvision ``resnet50`` with ``fc = Linear(2048, num_classes)``."""
    return _resnet("resnet50", num_classes)


def last_linear(model: nn.Module) -> nn.Linear:
    """Return the last ``nn.Linear`` registered in ``model`` (VGG's ``classifier[6]``, ResNet's ``fc``)."""
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    if not linears:
        raise TypeError(f"{type(model).__name__} has no nn.Linear layer: it is not a classifier")
    return linears[-1]


def penultimate_features(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Return the input of the classifier's last ``Linear`` for batch ``x`` (for t-SNE).

    4096-d for VGG16-BN (after the second ReLU/Dropout), 512-d for ResNet18/34, 2048-d for ResNet50.
    Uses a temporary forward pre-hook, so the model is never modified; the caller chooses the mode
    (``model.eval()`` so dropout is off) and the grad context (``torch.no_grad()``).
    """
    captured: list[torch.Tensor] = []

    def hook(_module: nn.Module, inputs: tuple[torch.Tensor, ...]) -> None:
        captured.append(inputs[0])

    handle = last_linear(model).register_forward_pre_hook(hook)
    try:
        model(x)
    finally:
        handle.remove()
    return captured[-1]
