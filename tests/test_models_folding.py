"""Folding VGG's first Linear for 1x1 feature maps: exact, a copy, inference-only."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from fcnlab.infer.folding import FoldedVGG, fold_vgg_classifier
from fcnlab.models import build_model, penultimate_features


@pytest.fixture(scope="module")
def vgg() -> nn.Module:
    torch.manual_seed(0)
    model = build_model("vgg16_bn", 50)
    with torch.no_grad():  # larger first-layer weights so that logits are far from zero
        model.classifier[0].weight.mul_(10)
    return model


def test_folded_equals_unfolded_on_32x32(vgg):
    folded = fold_vgg_classifier(vgg)
    assert isinstance(folded, FoldedVGG)
    assert folded.fc_folded.weight.shape == (4096, 512)
    x = torch.randn(4, 3, 32, 32)
    vgg.eval()
    with torch.no_grad():
        want, got = vgg(x), folded(x)
    assert want.abs().max() > 0.05
    torch.testing.assert_close(got, want, atol=1e-5, rtol=0)
    with torch.no_grad():
        feats = penultimate_features(folded, x)
        torch.testing.assert_close(feats, penultimate_features(vgg, x), atol=1e-5, rtol=0)
    assert feats.shape == (4, 4096)


def test_larger_inputs_fall_back_to_the_original_path(vgg):
    folded = fold_vgg_classifier(vgg)
    x = torch.randn(1, 3, 64, 64)  # 2x2 features
    vgg.eval()
    with torch.no_grad():
        torch.testing.assert_close(folded(x), vgg(x), atol=1e-6, rtol=0)


def test_original_is_not_mutated_and_fold_is_eval_only(vgg):
    vgg.train()
    before = {k: v.clone() for k, v in vgg.state_dict().items() if k.startswith("classifier")}
    folded = fold_vgg_classifier(vgg)
    assert vgg.training and not folded.training
    assert folded.features is not vgg.features
    for k, v in vgg.state_dict().items():
        if k in before:
            assert torch.equal(v, before[k])
    assert not any(p.requires_grad for p in folded.parameters())
    assert folded.eval() is folded
    with pytest.raises(RuntimeError, match="inference-only"):
        folded.train()
    vgg.eval()


def test_rejects_non_vgg():
    with pytest.raises(TypeError, match="torchvision VGG"):
        fold_vgg_classifier(build_model("resnet18", 10))
