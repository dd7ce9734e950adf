"""Models for 32x32 inputs: CIFAR-style ResNet-18 and AirNet (shapes, sizes, registry, no ImageNet weights)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from fcnlab.errors import ConfigError
from fcnlab.models import build_model, list_models, penultimate_features
from fcnlab.models.classifiers import last_linear
from fcnlab.models.pretrained import normalization


def test_resnet18_cifar_keeps_the_resolution_in_the_stem():
    model = build_model("resnet18_cifar", 50).eval()
    assert model.conv1.kernel_size == (3, 3) and model.conv1.stride == (1, 1)
    assert isinstance(model.maxpool, nn.Identity)
    # torchvision's resnet18 (11,689,512) with a 3x3x3x64 stem instead of 7x7x3x64 and a 512 -> 50 fc
    assert sum(p.numel() for p in model.parameters()) == 11_689_512 - 64 * 3 * (49 - 9) - 512 * 950 - 950
    feats: dict[str, torch.Size] = {}

    def record(_module: nn.Module, _inputs: tuple[torch.Tensor, ...], out: torch.Tensor) -> None:
        feats["layer1"] = out.shape

    model.layer1.register_forward_hook(record)
    with torch.no_grad():
        assert model(torch.randn(2, 3, 32, 32)).shape == (2, 50)
    assert feats["layer1"] == (2, 64, 32, 32)  # torchvision's stem would leave 8x8 here
    assert "(maxpool): Identity()" in str(model)


def test_airnet_resnet9_layout():
    model = build_model("airnet", 50, widths=(128, 256, 512), stem=64, pairs=(1, 0, 1))
    text = str(model)
    assert text.startswith("AirNet(") and "ResidualPair" in text and "GELU" in text
    assert [s[0][0].out_channels for s in model.stages] == [128, 256, 512]
    convs = 9 * (3 * 64 + 64 * 128 + 2 * 128 * 128 + 128 * 256 + 256 * 512 + 2 * 512 * 512)
    bns = 2 * (64 + 128 + 2 * 128 + 256 + 512 + 2 * 512)
    assert sum(p.numel() for p in model.parameters()) == convs + bns + 512 * 50 + 50  # ResNet-9's 6.6M
    with torch.no_grad():
        assert model.eval()(torch.randn(3, 3, 32, 32)).shape == (3, 50)


def test_airnet_options_and_any_input_size():
    model = build_model("airnet", 10, widths=(16, 32), stem=8, pairs=(0, 1), scale=1.0).eval()
    assert model.fc.in_features == 32 and model.fc.out_features == 10
    with torch.no_grad():
        assert model(torch.randn(1, 3, 24, 24)).shape == (1, 10)  # global pooling: crops of other sizes
    with pytest.raises(ValueError, match="one entry per stage"):
        build_model("airnet", 10, widths=(16, 32), pairs=(0,))


def test_airnet_has_no_imagenet_weights():
    with pytest.raises(ConfigError, match="no ImageNet weights"):
        build_model("airnet", 50, pretrained=True)
    with pytest.raises(ConfigError, match="drop --pretrained"):
        normalization("airnet", pretrained=True)


def test_registered_as_classifiers():
    assert {"airnet", "resnet18_cifar"} <= set(list_models("classify"))


@pytest.mark.parametrize("name", list_models("classify"))
def test_every_classifier_on_32x32(name):
    """Every registered classifier: 32x32 batch -> (B, classes) logits; penultimate features feed its last Linear."""
    model = build_model(name, 7).eval()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        logits = model(x)
        feats = penultimate_features(model, x)
    assert logits.shape == (2, 7) and torch.isfinite(logits).all()
    assert feats.shape == (2, last_linear(model).in_features)
