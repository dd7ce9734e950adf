"""FCN models: seed printouts, exact output sizes, zero score layers, bilinear/frozen upsamplers."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
import torch
import torch.nn.functional as F
import torchvision
from torch import nn

from fcnlab.models import build_model, list_models
from fcnlab.models.fcn import FCN, VGG_POOL4, vgg16_bn_features

C = 7


@pytest.fixture(scope="module")
def fcn() -> Iterator[Callable[[str], FCN]]:
    """``fcn(name)`` builds each FCN once per module (VGG ones take ~1 s on 2 cores), freed afterwards."""
    cache: dict[str, FCN] = {}

    def get(name: str) -> FCN:
        if name not in cache:
            cache[name] = build_model(name, C).eval()
        return cache[name]

    yield get
    cache.clear()


def randomize_scores(model: nn.Module, seed: int = 0) -> None:
    """Give the (zero-initialised) score layers small random weights so outputs are not all zero."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, m in model.named_modules():
            if name.startswith("score"):
                m.weight.copy_(torch.randn(m.weight.shape, generator=g) * 0.05)
                m.bias.copy_(torch.randn(m.bias.shape, generator=g))


def test_fcn8s_resnet34_prints_seed_head(fcn):
    text = str(fcn("fcn8s_resnet34"))
    for line in [
        "(scores1): Conv2d(512, 7, kernel_size=(1, 1), stride=(1, 1))",
        "(scores2): Conv2d(256, 7, kernel_size=(1, 1), stride=(1, 1))",
        "(scores3): Conv2d(128, 7, kernel_size=(1, 1), stride=(1, 1))",
        "(upsample_2x): ConvTranspose2d(7, 7, kernel_size=(4, 4), stride=(2, 2), padding=(1, 1), bias=False)",
        "(upsample_4x): ConvTranspose2d(7, 7, kernel_size=(4, 4), stride=(2, 2), padding=(1, 1), bias=False)",
        "(upsample_8x): ConvTranspose2d(7, 7, kernel_size=(16, 16), stride=(8, 8), padding=(4, 4), bias=False)",
        "(conv1): Conv2d(3, 64, kernel_size=(7, 7), stride=(2, 2), padding=(3, 3), bias=False)",
    ]:
        assert line in text, line
    assert "(fc)" not in text and "(avgpool)" not in text


def test_fcn32s_vgg16_prints_vgg_features_and_fc_convs(fcn):
    text = str(fcn("fcn32s_vgg16"))
    for line in [
        "(43): MaxPool2d(kernel_size=2, stride=2, padding=0, dilation=1, ceil_mode=False)",
        "(fc6): Conv2d(512, 4096, kernel_size=(7, 7), stride=(1, 1), padding=(3, 3))",
        "(fc7): Conv2d(4096, 4096, kernel_size=(1, 1), stride=(1, 1))",
        "(score): Conv2d(4096, 7, kernel_size=(1, 1), stride=(1, 1))",
        "(upsample_32x): ConvTranspose2d(7, 7, kernel_size=(64, 64), stride=(32, 32), padding=(16, 16), bias=False)",
    ]:
        assert line in text, line


def test_trunk_state_dict_keys_match_torchvision(fcn):
    with torch.device("meta"):  # structure only: no memory, no init time
        resnet, vgg = torchvision.models.resnet34(), torchvision.models.vgg16_bn()
    resnet_keys = {k for k in resnet.state_dict() if not k.startswith("fc.")}
    fcn_keys = set(fcn("fcn8s_resnet34").state_dict())
    assert resnet_keys <= fcn_keys
    assert {k.split(".")[0] for k in fcn_keys - resnet_keys} == {
        "scores1",
        "scores2",
        "scores3",
        "upsample_2x",
        "upsample_4x",
        "upsample_8x",
    }
    vgg_features = {k for k in vgg.state_dict() if k.startswith("features.")}
    assert vgg_features == {k for k in fcn("fcn32s_vgg16").state_dict() if k.startswith("features.")}


def test_vgg_features_equal_torchvision_features():
    torch.manual_seed(0)
    ours = vgg16_bn_features()
    with torch.device("meta"):
        theirs = torchvision.models.vgg16_bn().features
    assert str(ours) == str(theirs)
    conv = ours[40]
    assert not conv.bias.any() and 0.015 < conv.weight.std() < 0.025  # kaiming fan_out: sqrt(2 / (512 * 9))
    assert torch.equal(ours[1].weight, torch.ones(64)) and not ours[1].bias.any()


@pytest.mark.parametrize(
    "name", [pytest.param(n, marks=pytest.mark.slow) if "vgg" in n else n for n in list_models("segment")]
)
def test_output_shapes_and_zero_start(name, fcn):
    model = fcn(name)
    heads = [m for n, m in model.named_modules() if n.startswith("score")]
    assert heads and all(not m.weight.any() and not m.bias.any() for m in heads)
    with torch.no_grad():
        big = model(torch.randn(1, 3, 512, 512))
        for h, w in [(256, 256), (100, 75), (32, 64)]:
            assert model(torch.randn(1, 3, h, w)).shape == (1, C, h, w)
    assert big.shape == (1, C, 512, 512)
    assert not big.any()  # all score layers at zero: the model starts from all-zero logits


@pytest.mark.parametrize("name", ["fcn8s_resnet34", "fcn32s_resnet34"])
def test_odd_sizes_are_zero_padded_then_cropped(name):
    model = build_model(name, C).eval()
    randomize_scores(model)
    x = torch.randn(1, 3, 100, 75)
    with torch.no_grad():
        y = model(x)
        padded = model(F.pad(x, (0, 96 - 75, 0, 128 - 100)))
    assert y.shape == (1, C, 100, 75) and y.abs().max() > 0.1
    torch.testing.assert_close(y, padded[..., :100, :75])


def test_gradients_reach_zero_score_layers():
    model = build_model("fcn8s_resnet34", C).train()
    x = torch.randn(2, 3, 64, 64)
    target = torch.randint(0, C, (2, 64, 64))
    out = model(x)
    assert not out.any()
    F.cross_entropy(out, target).backward()
    for name in ("scores1", "scores2", "scores3"):
        assert getattr(model, name).weight.grad.abs().sum() > 0, name
        assert getattr(model, name).bias.grad.abs().sum() > 0, name
    # the trunk gets no gradient yet (the score weights are zero), exactly as in the paper's recipe
    assert model.layer4[-1].conv2.weight.grad is None or not model.layer4[-1].conv2.weight.grad.any()


def test_upsampler_defaults_and_bilinear_init(fcn):
    assert fcn("fcn32s_vgg16").upsample_32x.weight.requires_grad is False
    assert fcn("fcn32s_resnet34").upsample_32x.weight.requires_grad is False
    assert build_model("fcn32s_resnet34", C, learn_upsampling=True).upsample_32x.weight.requires_grad
    m8 = fcn("fcn8s_resnet34")
    assert all(getattr(m8, n).weight.requires_grad for n in ("upsample_2x", "upsample_4x", "upsample_8x"))
    frozen = build_model("fcn8s_resnet34", C, learn_upsampling=False)
    assert not any(getattr(frozen, n).weight.requires_grad for n in ("upsample_2x", "upsample_4x", "upsample_8x"))
    w = m8.upsample_8x.weight
    assert w[0, 1].abs().sum() == 0 and torch.isclose(w[2, 2].max(), torch.tensor(0.9375**2))


def test_fcn8s_vgg16_scales_pool4_before_its_score_layer(fcn):
    model = fcn("fcn8s_vgg16")
    seen: dict[str, torch.Tensor] = {}
    hooks = [
        model.features[VGG_POOL4].register_forward_hook(lambda m, i, o: seen.__setitem__("pool4", o)),
        model.scores2.register_forward_pre_hook(lambda m, i: seen.__setitem__("scores2_in", i[0])),
    ]
    try:
        with torch.no_grad():
            model(torch.randn(1, 3, 64, 64))
    finally:
        for h in hooks:
            h.remove()
    assert seen["pool4"].abs().max() > 0
    torch.testing.assert_close(seen["scores2_in"], seen["pool4"] * 0.01)
    assert model.skip_scales == (0.01, 0.0001)
    assert fcn("fcn8s_resnet34").skip_scales == (1.0, 1.0)


def test_fpn_lite16_stops_at_stride_16_and_fcn_heads_need_stride_32():
    from fcnlab.models.lite import FCN8sLite, FPNLite

    m16, m32 = build_model("fpn_lite16", C), build_model("fpn_lite", C)
    assert not hasattr(m16, "stage5") and hasattr(m32, "stage5")
    assert [f.shape[-1] for f in m16.pyramid(torch.zeros(1, 3, 128, 128))] == [64, 32, 16, 8]
    assert len(m16.lateral) == 3 and len(m32.lateral) == 4
    # the stride-32 stage holds the parameters that the 4x4-pixel features of a 128x128 tile barely use
    n16, n32 = (sum(p.numel() for p in m.parameters()) for m in (m16, m32))
    assert 1.9e6 < n16 < 2.1e6 and n32 - n16 > 1.7e6
    with pytest.raises(ValueError, match="one entry more"):
        FPNLite(C, widths=(32, 32, 64, 128), blocks=(0, 1, 1, 1))
    with pytest.raises(ValueError, match="stride-32 stage"):
        FCN8sLite(C, True, (32, 32, 64, 128, 256), (0, 1, 1, 1))(torch.zeros(1, 3, 64, 64))


def test_patch_stem_fcns_see_a_tile_of_twice_the_side_with_the_same_feature_sizes():
    from fcnlab.models.lite import LiteTrunk

    patch, plain = build_model("fcn8s_lite_patch", C), build_model("fcn8s_lite", C)
    big, small = torch.zeros(1, 3, 256, 256), torch.zeros(1, 3, 128, 128)
    assert [f.shape[-1] for f in patch.pyramid(big)] == [64, 32, 16, 8]
    assert [f.shape[-1] for f in plain.pyramid(small)] == [64, 32, 16, 8, 4]
    assert [f.shape[-1] for f in patch.stages(big)] == [32, 16, 8]  # strides 8, 16, 32 of the 256-pixel tile
    assert patch.stem[0].kernel_size == (4, 4) and patch.stem[0].stride == (4, 4)
    assert patch.trunk_channels == (64, 128, 256) and patch.scores1.in_channels == 256
    assert build_model("fcn32s_lite_patch", C).score.in_channels == 256
    with pytest.raises(ValueError, match="stem_stride"):
        LiteTrunk(C, stem_stride=8)
    with pytest.raises(ValueError, match="stride-32 stage"):  # a patch stem and five stages reach stride 64
        build_model("fcn8s_lite_patch", C, widths=(32, 32, 64, 128, 256, 256), blocks=(0, 1, 1, 1, 1)).stages(big)


def test_fpn_lite16_s2_scores_at_stride_2():
    from fcnlab.models.lite import FPNLite

    model, coarse = build_model("fpn_lite16_s2", C).eval(), build_model("fpn_lite16", C)
    seen: dict[str, torch.Tensor] = {}
    model.score.register_forward_pre_hook(lambda m, i: seen.__setitem__("score_in", i[0]))
    with torch.no_grad():
        out = model(torch.randn(1, 3, 128, 128))
    assert out.shape == (1, C, 128, 128) and seen["score_in"].shape[-2:] == (64, 64)
    assert model.score.in_channels == 32 and not hasattr(coarse, "fine")
    assert "fine" in model.HEAD and all(n.split(".")[0] in model.HEAD for n, _ in model.named_modules() if "fine" in n)
    with pytest.raises(ValueError, match="out_stride"):
        FPNLite(C, out_stride=8)


@pytest.mark.parametrize(
    ("name", "bins", "in_head"),
    [
        ("fpn_lite16_ppm", (1, 2, 4), True),  # added to the decoder's deepest lateral (8x8 at stride 16)
        ("fcn8s_lite_ppm", (1, 2), False),  # added to the shared encoder's stride-32 map (4x4)
        ("fcn32s_lite_ppm", (1, 2), False),
    ],
)
def test_pyramid_pooling_models_are_their_plain_model_plus_the_pooled_tile(name, bins, in_head):
    model, plain = build_model(name, C), build_model(name.removesuffix("_ppm"), C)
    grid = model.context.grid
    assert [p[0].kernel_size for p in model.context] == [grid // b for b in bins] and not hasattr(plain, "context")
    assert model.HEAD == plain.HEAD and ("context" in model.HEAD) == in_head
    # without the context branches the two models compute the same: copy the shared weights and zero the branches
    missing = model.load_state_dict(plain.state_dict(), strict=False).missing_keys
    assert missing and all(k.startswith("context.") for k in missing)
    for branch in model.context:
        nn.init.zeros_(branch[1].weight)
        nn.init.zeros_(branch[1].bias)
    randomize_scores(model)
    plain.load_state_dict(model.state_dict(), strict=False)
    model.eval(), plain.eval()
    x = torch.randn(2, 3, 128, 128)
    with torch.no_grad():
        torch.testing.assert_close(model(x), plain(x))
        # the global branch sees the whole tile: a change in one corner reaches the opposite corner through it
        nn.init.normal_(model.context[0][1].weight)
        y = x.clone()
        y[..., :16, :16] += 3.0
        through_context = (model(y) - model(x)) - (plain(y) - plain(x))
        assert through_context[..., -8:, -8:].abs().max() > 1e-3
        # on a 128-pixel tile the deepest map is the grid itself: the fixed windows are adaptive pooling's averages
        deepest = plain.pyramid(x)[-1]
        assert deepest.shape[-1] == grid
        for branch, b in zip(model.context, bins, strict=True):
            torch.testing.assert_close(branch[0](deepest), F.adaptive_avg_pool2d(deepest, b))
    with pytest.raises(ValueError, match="context_bins"):
        build_model(name, C, context_bins=(0,))
    with pytest.raises(ValueError, match="divide context_grid"):
        build_model(name, C, context_bins=(3,))
