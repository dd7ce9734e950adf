"""fc6 as unfold + GEMM for CPU inference: same outputs as the convolution, only where it applies."""

from __future__ import annotations

import torch
from torch import nn

from fcnlab.config import from_dict
from fcnlab.infer.predictor import make_predictor
from fcnlab.infer.unfold_conv import UnfoldConv2d, unfold_large_convs
from fcnlab.models import build_model


def test_unfold_conv_equals_the_convolution_for_both_memory_formats():
    torch.manual_seed(0)
    conv = nn.Conv2d(96, 40, 7, padding=3).eval()
    x = torch.randn(2, 96, 9, 11)
    fast = UnfoldConv2d(conv)
    with torch.inference_mode():
        expected = conv(x)
        torch.testing.assert_close(fast(x), expected, atol=1e-4, rtol=1e-4)
        torch.testing.assert_close(
            fast(x.contiguous(memory_format=torch.channels_last)), expected, atol=1e-4, rtol=1e-4
        )


def test_only_deep_stride_one_large_kernels_are_replaced():
    model = nn.Sequential(
        nn.Conv2d(3, 64, 7, stride=2, padding=3),  # ResNet's stem: kept
        nn.Conv2d(64, 64, 3, padding=1),  # small kernel: kept
        nn.Conv2d(512, 8, 7, padding=3),
    )  # fc6-like: replaced
    assert unfold_large_convs(model) == 1
    assert [type(m).__name__ for m in model] == ["Conv2d", "Conv2d", "UnfoldConv2d"]
    resnet_fcn = build_model("fcn8s_resnet34", 7)
    assert unfold_large_convs(resnet_fcn) == 0


def test_fcn32s_cpu_predictor_uses_it_and_matches_the_bare_model():
    torch.manual_seed(0)
    model = build_model("fcn32s_vgg16", 7).eval()
    with torch.no_grad():  # a non-zero score layer, so the logits depend on fc6
        nn.init.normal_(model.score.weight, std=0.01)
    cfg = from_dict({"task": "segment", "model": "fcn32s_vgg16", "device": "cpu"})
    pred = make_predictor(model, cfg, torch.device("cpu"), None)
    assert isinstance(pred.model.fc6, UnfoldConv2d) and type(model.fc6) is nn.Conv2d
    images = torch.randint(0, 256, (1, 3, 64, 64), dtype=torch.uint8)
    bare = make_predictor(model, cfg, torch.device("cpu"), None, fuse=False)
    assert type(bare.model.fc6) is nn.Conv2d  # the caller's model is never changed
    got, expected = pred.logits(images), bare.logits(images)
    assert expected.abs().max() > 0
    torch.testing.assert_close(got, expected, atol=1e-4, rtol=1e-4)
