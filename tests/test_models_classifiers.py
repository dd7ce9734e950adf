"""P1 classifiers: torchvision structure, replaced last layer, penultimate features without mutation."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from fcnlab.models import build_model, penultimate_features
from fcnlab.models.classifiers import last_linear

SEED_LINES = [
    "(43): MaxPool2d(kernel_size=2, stride=2, padding=0, dilation=1, ceil_mode=False)",
    "(avgpool): AdaptiveAvgPool2d(output_size=(7, 7))",
    "(0): Linear(in_features=25088, out_features=4096, bias=True)",
    "(3): Linear(in_features=4096, out_features=4096, bias=True)",
    "(6): Linear(in_features=4096, out_features=50, bias=True)",
    "(0): Conv2d(3, 64, kernel_size=(3, 3), stride=(1, 1), padding=(1, 1))",
]


@pytest.fixture(scope="module")
def vgg() -> nn.Module:
    return build_model("vgg16_bn", 50).eval()


def test_vgg16_bn_prints_torchvision_structure(vgg):
    text = str(vgg)
    assert text.startswith("VGG(")
    for line in SEED_LINES:
        assert line in text, line
    assert "(44)" not in text  # features end at index 43


def test_vgg_penultimate_features_without_mutation(vgg):
    x = torch.randn(2, 3, 32, 32)
    before = {name: list(m._modules) for name, m in vgg.named_modules()}
    with torch.no_grad():
        feats = penultimate_features(vgg, x)
        logits = vgg(x)
    assert feats.shape == (2, 4096)
    assert (feats >= 0).all()  # after ReLU (dropout is off in eval mode)
    torch.testing.assert_close(vgg.classifier[6](feats), logits)
    assert {name: list(m._modules) for name, m in vgg.named_modules()} == before
    assert not vgg.classifier[6]._forward_pre_hooks  # the temporary hook is gone


@pytest.mark.parametrize(("name", "dim"), [("resnet18", 512), ("resnet34", 512), ("resnet50", 2048)])
def test_resnets(name, dim):
    model = build_model(name, 50).eval()
    assert isinstance(model.fc, nn.Linear) and model.fc.out_features == 50 and model.fc.in_features == dim
    with torch.no_grad():
        feats = penultimate_features(model, torch.randn(2, 3, 32, 32))
    assert feats.shape == (2, dim)
    assert last_linear(model) is model.fc


def test_penultimate_needs_a_linear_layer():
    with pytest.raises(TypeError, match="no nn.Linear"):
        penultimate_features(nn.Conv2d(3, 4, 1), torch.randn(1, 3, 4, 4))
