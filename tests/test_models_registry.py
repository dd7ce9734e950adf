"""The model registry: names, tasks, errors for unknown names and options."""

from __future__ import annotations

import pytest
from torch import nn

from fcnlab.errors import ConfigError
from fcnlab.models import build_model, list_models, model_task, registry

CLASSIFIERS = ["airnet", "resnet18", "resnet18_cifar", "resnet34", "resnet50", "vgg16_bn"]
SEGMENTERS = [
    "fcn32s_lite",
    "fcn32s_lite_patch",
    "fcn32s_lite_ppm",
    "fcn32s_resnet34",
    "fcn32s_vgg16",
    "fcn8s_lite",
    "fcn8s_lite_patch",
    "fcn8s_lite_ppm",
    "fcn8s_resnet34",
    "fcn8s_vgg16",
    "fpn_lite",
    "fpn_lite16",
    "fpn_lite16_ppm",
    "fpn_lite16_s2",
    "fpn_lite_full",
    "unet_resnet34",
]


def test_list_models_by_task():
    assert list_models("classify") == CLASSIFIERS
    assert list_models("segment") == SEGMENTERS
    assert list_models() == sorted(CLASSIFIERS + SEGMENTERS)
    assert model_task("vgg16_bn") == "classify" and model_task("fcn8s_resnet34") == "segment"
    with pytest.raises(ConfigError, match="unknown task"):
        list_models("detect")


def test_unknown_model_lists_valid_names():
    with pytest.raises(ConfigError) as e:
        build_model("vgg19", 10)
    msg = str(e.value)
    assert "'vgg19'" in msg and "fcn8s_resnet34" in msg and "vgg16_bn" in msg
    with pytest.raises(ConfigError, match="unknown model"):
        model_task("fcn16s")


def test_bad_options_are_config_errors():
    with pytest.raises(ConfigError, match="bad option for model 'resnet18'"):
        build_model("resnet18", 10, learn_upsampling=True)
    with pytest.raises(ConfigError, match="num_classes"):
        build_model("resnet18", 0)


def test_kwargs_reach_the_builder():
    m = build_model("fcn8s_resnet34", 3, learn_upsampling=False)
    assert m.upsample_8x.weight.requires_grad is False and m.scores1.out_channels == 3


def test_register_model_decorator():
    @registry.register_model("tiny_test", task="classify", backbone="resnet18", head=("1",))
    def tiny(num_classes: int) -> nn.Module:
        return nn.Sequential(nn.Flatten(), nn.Linear(12, num_classes))

    try:
        assert "tiny_test" in list_models("classify")
        assert build_model("tiny_test", 4)[1].out_features == 4
        with pytest.raises(ValueError, match="already registered"):
            registry.register_model("tiny_test", task="classify", backbone="resnet18")(tiny)
    finally:
        registry.unregister_model("tiny_test")
    assert "tiny_test" not in list_models()
    with pytest.raises(ValueError, match="task"):
        registry.register_model("x", task="detect", backbone="resnet18")
