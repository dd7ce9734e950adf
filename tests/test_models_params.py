"""Optimizer parameter groups: frozen parameters excluded, no decay on norms/biases, backbone LR."""

from __future__ import annotations

import torch

from fcnlab.models import build_model, trainable_param_groups
from fcnlab.models.params import head_modules


def _ids(groups, name=None):
    return {id(p) for g in groups if name is None or g["name"] == name for p in g["params"]}


def test_frozen_upsampler_is_left_out():
    model = build_model("fcn32s_resnet34", 7)
    groups = trainable_param_groups(model, lr=0.01, weight_decay=5e-4)
    assert id(model.upsample_32x.weight) not in _ids(groups)
    trainable = {id(p) for p in model.parameters() if p.requires_grad}
    assert _ids(groups) == trainable
    assert sum(len(g["params"]) for g in groups) == len(trainable)  # no duplicates
    torch.optim.SGD(groups, lr=0.01, momentum=0.9)  # the groups are valid for torch optimizers

    learned = build_model("fcn32s_resnet34", 7, learn_upsampling=True)
    groups = trainable_param_groups(learned, lr=0.01, weight_decay=5e-4)
    assert id(learned.upsample_32x.weight) in _ids(groups, "head/no_decay")


def test_decay_split_backbone_and_head():
    model = build_model("fcn8s_resnet34", 7)
    groups = trainable_param_groups(model, lr=0.1, weight_decay=1e-4)
    by_name = {g["name"]: g for g in groups}
    assert set(by_name) == {"backbone/decay", "backbone/no_decay", "head/decay", "head/no_decay"}
    assert {g["lr"] for g in groups} == {0.1}
    assert by_name["backbone/no_decay"]["weight_decay"] == 0.0 and by_name["head/decay"]["weight_decay"] == 1e-4
    no_decay = _ids(groups, "backbone/no_decay")
    assert id(model.bn1.weight) in no_decay and id(model.layer1[0].bn1.bias) in no_decay
    assert id(model.conv1.weight) in _ids(groups, "backbone/decay")
    assert id(model.scores1.weight) in _ids(groups, "head/decay")
    assert id(model.scores1.bias) in _ids(groups, "head/no_decay")
    assert id(model.upsample_8x.weight) in _ids(groups, "head/no_decay")


def test_classifier_head_is_the_last_linear():
    model = build_model("resnet18", 50)
    assert head_modules(model) == ("fc",)
    groups = trainable_param_groups(model, lr=1.0, weight_decay=0.1)
    assert _ids(groups, "head/decay") == {id(model.fc.weight)}
    assert _ids(groups, "head/no_decay") == {id(model.fc.bias)}


def test_wrapped_models_are_unwrapped():
    model = build_model("fcn32s_resnet34", 7)

    class Wrapper(torch.nn.Module):  # stands in for DDP: the user model under .module
        def __init__(self, module):
            super().__init__()
            self.module = module

    groups = trainable_param_groups(Wrapper(model), lr=0.1, weight_decay=0.0)
    assert id(model.score.weight) in _ids(groups, "head/decay")
