"""The ResNet34 U-Net: registry, printout, parameter count, exact output sizes, zero score layer."""

from __future__ import annotations

import pytest
import torch
import torchvision
from torch import nn

from fcnlab.models import build_model, list_models, model_task, trainable_param_groups
from fcnlab.models.params import head_modules
from fcnlab.models.registry import get_spec

C = 7


@pytest.fixture(scope="module")
def unet() -> nn.Module:
    torch.manual_seed(0)
    return build_model("unet_resnet34", C).eval()


def test_registered_as_segmentation_model_on_resnet34():
    assert "unet_resnet34" in list_models("segment")
    assert model_task("unet_resnet34") == "segment"
    spec = get_spec("unet_resnet34")
    assert spec.backbone == "resnet34" and spec.head == ("decoder", "score")


def test_printout_and_parameter_count(unet):
    text = str(unet)
    for line in [
        "(conv1): Conv2d(3, 64, kernel_size=(7, 7), stride=(2, 2), padding=(3, 3), bias=False)",
        "(score): Conv2d(16, 7, kernel_size=(1, 1), stride=(1, 1))",
        "(conv1): Sequential(\n        (0): Conv2d(768, 256, kernel_size=(3, 3), stride=(1, 1), "
        "padding=(1, 1), bias=False)",
    ]:
        assert line in text, line
    assert "(fc)" not in text and "(avgpool)" not in text
    n = sum(p.numel() for p in unet.parameters())
    encoder = sum(p.numel() for k, p in torchvision.models.resnet34().named_parameters() if not k.startswith("fc."))
    decoder = sum(p.numel() for p in unet.decoder.parameters())
    assert n == encoder + decoder + 16 * C + C
    assert n == 24_436_343


def test_encoder_keys_are_torchvision_resnet34_keys(unet):
    tv = torchvision.models.resnet34().state_dict()
    enc = {k for k in unet.state_dict() if not k.startswith(("decoder.", "score."))}
    assert enc == {k for k in tv if not k.startswith("fc.")}


def test_score_layer_starts_at_zero_and_head_is_declared(unet):
    assert torch.count_nonzero(unet.score.weight) == 0 and torch.count_nonzero(unet.score.bias) == 0
    assert head_modules(unet) == ("decoder", "score")
    names = {g["name"] for g in trainable_param_groups(unet, 0.01, 1e-4)}
    assert names == {"backbone/decay", "backbone/no_decay", "head/decay", "head/no_decay"}


@pytest.mark.parametrize("size", [(512, 512), (64, 96), (37, 50), (33, 129)])
def test_output_has_the_input_size(unet, size):
    with torch.no_grad():
        nn.init.normal_(unet.score.weight, std=0.1)
        try:
            out = unet(torch.randn(1, 3, *size))
        finally:
            nn.init.zeros_(unet.score.weight)
    assert out.shape == (1, C, *size)
    assert torch.isfinite(out).all() and out.std() > 0


def test_trains_one_step():
    torch.manual_seed(2)
    model = build_model("unet_resnet34", C).train()
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    x, y = torch.randn(2, 3, 64, 64), torch.randint(0, C, (2, 64, 64))
    loss = torch.nn.functional.cross_entropy(model(x), y)
    loss.backward()
    assert model.score.weight.grad.abs().sum() > 0
    opt.step()
    assert torch.count_nonzero(model.score.weight) > 0
