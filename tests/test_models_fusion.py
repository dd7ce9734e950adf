"""BatchNorm folded into convolutions for inference: same outputs, no BatchNorm left, original untouched."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from fcnlab.infer.fusion import fuse_conv_bn
from fcnlab.models import build_model


def randomise_bn(model: nn.Module, seed: int = 0) -> nn.Module:
    """Non-trivial BN statistics and affine parameters, so a wrong fusion cannot pass by accident."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                n = m.num_features
                m.running_mean.copy_(torch.randn(n, generator=gen) * 0.5)
                m.running_var.copy_(torch.rand(n, generator=gen) * 2 + 0.1)
                m.weight.copy_(torch.rand(n, generator=gen) + 0.5)
                m.bias.copy_(torch.randn(n, generator=gen) * 0.2)
    return model.eval()


def count_bn(model: nn.Module) -> int:
    return sum(isinstance(m, nn.BatchNorm2d) for m in model.modules())


@pytest.mark.parametrize(
    ("name", "classes", "size"),
    [
        ("vgg16_bn", 50, 32),
        ("resnet34", 50, 32),
        ("fcn8s_resnet34", 7, 64),
        ("fcn32s_resnet34", 7, 64),
        ("fcn32s_vgg16", 7, 64),
    ],
)
def test_fused_model_matches_and_has_no_batchnorm_left(name, classes, size):
    torch.manual_seed(0)
    model = randomise_bn(build_model(name, classes))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    n_bn = count_bn(model)
    x = torch.randn(2, 3, size, size)
    with torch.inference_mode():
        expected = model(x)
        fused, pairs = fuse_conv_bn(model)
        got = fused(x)
    assert pairs == n_bn > 0 and count_bn(fused) == 0 and not fused.training
    scale = expected.abs().max().item()
    torch.testing.assert_close(got, expected, atol=1e-4 * max(scale, 1.0), rtol=1e-4)
    assert count_bn(model) == n_bn  # the original keeps its BatchNorm and its weights
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_only_conv_then_bn_pairs_are_fused():
    conv_first = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU())
    bn_first = nn.Sequential(nn.BatchNorm2d(3), nn.Conv2d(3, 4, 3))
    other_pair = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.BatchNorm2d(4))  # BN not right after the conv
    assert fuse_conv_bn(conv_first)[1] == 1
    assert fuse_conv_bn(bn_first)[1] == 0
    assert fuse_conv_bn(other_pair)[1] == 0


def test_inplace_fuses_the_given_model():
    model = randomise_bn(nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4)))
    fused, pairs = fuse_conv_bn(model, inplace=True)
    assert fused is model and pairs == 1 and isinstance(model[1], nn.Identity)
