"""ImageNet weights: transplanting torchvision state dicts (VGG fc6/fc7 reshaped), files, offline errors."""

from __future__ import annotations

import urllib.error

import pytest
import torch
import torchvision
from torchvision.models import WeightsEnum

from fcnlab.errors import ConfigError
from fcnlab.models import build_model, normalization
from fcnlab.models.pretrained import IMAGENET_MEAN, IMAGENET_STD, read_state_dict, transplant
from fcnlab.models.registry import get_spec


@pytest.fixture(scope="module")
def vgg_state() -> dict[str, torch.Tensor]:
    torch.manual_seed(0)
    return torchvision.models.vgg16_bn().state_dict()


def _serve(monkeypatch, state):
    """Make torchvision's weights API return ``state`` instead of downloading."""
    calls = []

    def fake(self, *args, **kwargs):
        calls.append(str(self))
        return state

    monkeypatch.setattr(WeightsEnum, "get_state_dict", fake)
    return calls


def test_fcn32s_vgg16_pretrained_transplants_fc6_fc7(monkeypatch, vgg_state):
    calls = _serve(monkeypatch, vgg_state)
    model = build_model("fcn32s_vgg16", 7, pretrained=True)
    assert calls == ["VGG16_BN_Weights.IMAGENET1K_V1"]
    assert torch.equal(model.fc6.weight, vgg_state["classifier.0.weight"].view(4096, 512, 7, 7))
    assert torch.equal(model.fc6.bias, vgg_state["classifier.0.bias"])
    assert torch.equal(model.fc7.weight, vgg_state["classifier.3.weight"].view(4096, 4096, 1, 1))
    assert torch.equal(model.features[0].weight, vgg_state["features.0.weight"])
    assert torch.equal(model.features[41].running_var, vgg_state["features.41.running_var"])
    assert not model.score.weight.any()  # the head keeps its own (zero) initialisation
    assert model.upsample_32x.weight[0, 0].max() > 0.9
    # the reshaped fc6 computes VGG's first Linear at the centre of a 7x7 feature map
    pool5 = torch.randn(1, 512, 7, 7)
    with torch.no_grad():
        conv = model.fc6(pool5)[0, :, 3, 3]
        linear = torch.nn.functional.linear(
            pool5.flatten(1), vgg_state["classifier.0.weight"], vgg_state["classifier.0.bias"]
        )[0]
    torch.testing.assert_close(conv, linear, atol=1e-4, rtol=1e-4)


def test_vgg16_bn_classifier_keeps_new_last_layer(monkeypatch, vgg_state):
    _serve(monkeypatch, vgg_state)
    model = build_model("vgg16_bn", 50, pretrained=True)
    assert torch.equal(model.classifier[3].weight, vgg_state["classifier.3.weight"])
    assert model.classifier[6].weight.shape == (50, 4096)


def test_weights_file_for_fcn8s_resnet34(tmp_path):
    torch.manual_seed(1)
    state = torchvision.models.resnet34().state_dict()
    path = tmp_path / "resnet34.pth"
    torch.save({"state_dict": {f"module.{k}": v for k, v in state.items()}}, path)
    model = build_model("fcn8s_resnet34", 7, weights=path)
    assert torch.equal(model.layer4[2].conv2.weight, state["layer4.2.conv2.weight"])
    assert torch.equal(model.bn1.running_mean, state["bn1.running_mean"])
    assert not model.scores3.weight.any()


def test_read_state_dict_formats_and_errors(tmp_path):
    t = {"a.weight": torch.ones(2)}
    wrapped = [t, {"state_dict": t}, {"model": t, "epoch": 3}, {"_orig_mod.module.a.weight": t["a.weight"]}]
    for i, obj in enumerate(wrapped):
        torch.save(obj, tmp_path / f"{i}.pt")
        assert list(read_state_dict(tmp_path / f"{i}.pt")) == ["a.weight"]
    with pytest.raises(ConfigError, match="no such file"):
        read_state_dict(tmp_path / "missing.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a torch file")
    with pytest.raises(ConfigError, match=r"junk\.pt: not a torch state dict file") as e:
        read_state_dict(tmp_path / "junk.pt")
    assert "\n" not in str(e.value) and "weights_only" not in str(e.value)  # one line, no unsafe advice
    torch.save({"epoch": 3}, tmp_path / "nostate.pt")
    with pytest.raises(ConfigError, match="expected a state dict"):
        read_state_dict(tmp_path / "nostate.pt")


def test_wrong_architecture_is_a_config_error(tmp_path):
    torch.save({"conv1.weight": torch.zeros(64, 3, 7, 7)}, tmp_path / "partial.pt")
    with pytest.raises(ConfigError, match=r"partial\.pt: not a torchvision resnet34 state dict \(missing 'bn1"):
        build_model("fcn8s_resnet34", 7, weights=tmp_path / "partial.pt")
    resnet50 = torchvision.models.resnet50().state_dict()
    model = build_model("fcn8s_resnet34", 7)
    with pytest.raises(ConfigError, match="layer1.0.conv1.weight' has shape"):
        transplant(model, resnet50, get_spec("fcn8s_resnet34"), "r50.pth")


def test_offline_download_gives_one_clear_error(monkeypatch, tmp_path):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))

    def offline(self, *args, **kwargs):
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(WeightsEnum, "get_state_dict", offline)
    with pytest.raises(ConfigError) as e:
        build_model("fcn32s_resnet34", 7, pretrained=True)
    msg = str(e.value)
    assert msg.startswith(
        "cannot download ImageNet weights for resnet34 (offline?): copy "
        "https://download.pytorch.org/models/resnet34-b627a593.pth to "
        f"{tmp_path / 'hub' / 'checkpoints' / 'resnet34-b627a593.pth'}, or pass --weights FILE"
    )
    assert "--no-pretrained" in msg and "drop --pretrained" not in msg  # the recipe may have set it
    assert "\n" not in msg


def test_normalization():
    assert normalization("vgg16_bn", pretrained=False) == (IMAGENET_MEAN, IMAGENET_STD)
    mean, std = normalization("fcn8s_resnet34", pretrained=True)
    assert mean == pytest.approx(IMAGENET_MEAN) and std == pytest.approx(IMAGENET_STD)
    for pretrained in (True, False):
        with pytest.raises(ConfigError, match="unknown model"):
            normalization("nope", pretrained=pretrained)
