"""Channels-last policy (CUDA always, CPU for large inputs) and the inference preparation that uses it."""

from __future__ import annotations

import pytest
import torch

from fcnlab.config import from_dict
from fcnlab.infer.folding import FoldedVGG
from fcnlab.infer.predictor import make_predictor
from fcnlab.models import build_model
from fcnlab.models.memory_format import CPU_MIN_SIDE, to_channels_last, use_channels_last

CPU = torch.device("cpu")


def cfg_for(task: str, size: int, channels_last: bool = True):
    model = "vgg16_bn" if task == "classify" else "fcn8s_resnet34"
    return from_dict(
        {
            "task": task,
            "model": model,
            "image_size": size,
            "device": "cpu",
            "num_classes": 50 if task == "classify" else 7,
            "channels_last": channels_last,
        }
    )


def test_policy():
    cuda = torch.device("cuda")
    assert use_channels_last(True, "fcn8s_resnet34", 512, cuda)
    assert use_channels_last(True, "vgg16_bn", 32, cuda)
    assert use_channels_last(True, "fcn8s_resnet34", CPU_MIN_SIDE, CPU)
    assert not use_channels_last(True, "fcn8s_resnet34", CPU_MIN_SIDE - 32, CPU)
    assert not use_channels_last(True, "vgg16_bn", 32, CPU)  # P1's 32x32 images: slower in NHWC on CPUs
    assert not use_channels_last(False, "fcn8s_resnet34", 512, cuda)


def test_models_marked_for_cpu_channels_last():
    assert use_channels_last(True, "airnet", 32, CPU)  # airnet at 32x32: NHWC wins on the CPU
    assert not use_channels_last(False, "airnet", 32, CPU)


def test_to_channels_last_converts_tensors_and_models_only_when_enabled():
    x = torch.randn(2, 3, 8, 8)
    assert to_channels_last(x, False) is x
    assert to_channels_last(x, True).is_contiguous(memory_format=torch.channels_last)
    conv = torch.nn.Conv2d(3, 4, 3)
    assert to_channels_last(conv, True).weight.is_contiguous(memory_format=torch.channels_last)


def test_segmentation_predictor_is_fused_channels_last_and_exact():
    torch.manual_seed(0)
    model = build_model("fcn8s_resnet34", 7).eval()
    cfg = cfg_for("segment", 512)
    pred = make_predictor(model, cfg, CPU, None)
    assert pred.channels_last and pred.model is not model
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in pred.model.modules())
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules())  # caller's model untouched
    images = torch.randint(0, 256, (2, 3, 64, 64), dtype=torch.uint8)
    assert pred.prepare(images).is_contiguous(memory_format=torch.channels_last)
    bare = make_predictor(model, cfg_for("segment", 512, channels_last=False), CPU, None, fuse=False)
    torch.testing.assert_close(pred.logits(images), bare.logits(images), atol=1e-4, rtol=1e-4)


@pytest.mark.slow
def test_p1_predictor_is_folded_and_fused_in_nchw_on_the_cpu():
    torch.manual_seed(0)
    model = build_model("vgg16_bn", 50).eval()
    pred = make_predictor(model, cfg_for("classify", 32), CPU, None)
    assert isinstance(pred.model, FoldedVGG) and not pred.channels_last
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in pred.model.modules())
    images = torch.randint(0, 256, (4, 3, 32, 32), dtype=torch.uint8)
    bare = make_predictor(model, cfg_for("classify", 32), CPU, None, fold=False, fuse=False)
    assert bare.model is model
    torch.testing.assert_close(pred.logits(images), bare.logits(images), atol=1e-4, rtol=1e-4)
