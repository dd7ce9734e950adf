"""Test-time augmentation: d4 equivariance with a real FCN, flip TTA for classifiers, tiling and padding."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from fcnlab.errors import ConfigError
from fcnlab.infer.tta import (
    ClassificationTTA,
    SegmentationTTA,
    apply_transform,
    invert_transform,
    parse_scales,
    transforms_for,
    with_tta,
)
from fcnlab.models import build_model

C = 7


def randomized(model: nn.Module, seed: int = 0) -> nn.Module:
    """Zero-initialised score layers get random weights (else every view predicts the same constant)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, m in model.named_modules():
            if name.startswith("score") and isinstance(m, nn.Conv2d):
                m.weight.copy_(torch.randn(m.weight.shape, generator=g) * 0.5)
                m.bias.copy_(torch.randn(m.bias.shape, generator=g) * 0.1)
    return model.eval()


@pytest.fixture(scope="module")
def fcn() -> nn.Module:
    torch.manual_seed(0)
    return randomized(build_model("fcn8s_resnet34", C))


@pytest.mark.parametrize("t", transforms_for("d4"))
def test_transforms_invert(t):
    x = torch.arange(2 * 3 * 4 * 5, dtype=torch.float32).view(2, 3, 4, 5)
    assert torch.equal(invert_transform(apply_transform(x, t), t), x)


def test_d4_has_eight_distinct_views():
    x = torch.arange(9, dtype=torch.float32).view(1, 1, 3, 3)
    views = {tuple(apply_transform(x, t).flatten().tolist()) for t in transforms_for("d4")}
    assert len(views) == 8
    assert transforms_for("flip") == [(0, False), (0, True)]
    assert transforms_for("none") == [(0, False)]


@pytest.mark.slow
@pytest.mark.parametrize("size", [(64, 64), (40, 72)])  # square, and sides that are not multiples of 32
def test_d4_prediction_of_a_transformed_tile_is_the_transformed_prediction(fcn, size):
    torch.manual_seed(1)
    x = torch.randn(1, 3, *size)
    tta = SegmentationTTA(fcn, "d4")
    with torch.inference_mode():
        base = tta(x)
        plain = fcn(x)
        for t in transforms_for("d4"):
            out = tta(apply_transform(x, t))
            assert out.shape[-2:] == apply_transform(base, t).shape[-2:]
            torch.testing.assert_close(out, apply_transform(base, t), atol=2e-5, rtol=1e-4)
    # the model alone is not equivariant, so the test above can fail
    with torch.inference_mode():
        rotated = fcn(apply_transform(x, (1, False)))
    assert not torch.allclose(rotated, apply_transform(plain, (1, False)), atol=1e-3)


def test_tta_output_is_log_of_mean_softmax(fcn):
    torch.manual_seed(2)
    x = torch.randn(1, 3, 64, 96)
    with torch.inference_mode():
        out = SegmentationTTA(fcn, "flip")(x)
        expected = (fcn(x).softmax(1) + fcn(x.flip(-1)).softmax(1).flip(-1)) / 2
        torch.testing.assert_close(out.exp(), expected, atol=1e-6, rtol=1e-5)
        torch.testing.assert_close(out.exp().sum(1), torch.ones(1, 64, 96))
        # without augmentation the argmax is the plain model's
        assert torch.equal(SegmentationTTA(fcn, "none")(x).argmax(1), fcn(x).argmax(1))


@pytest.mark.slow
def test_multiscale_keeps_size_and_d4_equivariance(fcn):
    torch.manual_seed(3)
    x = torch.randn(1, 3, 48, 80)
    tta = SegmentationTTA(fcn, "d4", scales=(0.75, 1.0, 1.25))
    with torch.inference_mode():
        base = tta(x)
        assert base.shape == (1, C, 48, 80)
        assert torch.isfinite(base).all()
        for t in [(1, False), (2, True), (3, True)]:
            torch.testing.assert_close(tta(apply_transform(x, t)), apply_transform(base, t), atol=1e-4, rtol=2e-3)


@pytest.mark.slow
def test_tta_composes_with_tiling(fcn):
    """A tiled prediction of a large image with TTA: each core is the TTA prediction of its window."""
    from fcnlab.config import from_dict
    from fcnlab.infer.predictor import make_predictor
    from fcnlab.infer.tiling import predict_mask

    cfg = from_dict({"task": "segment", "model": "fcn8s_resnet34", "channels_last": False})
    tta = SegmentationTTA(fcn, "flip")
    pred = make_predictor(tta, cfg, torch.device("cpu"), None, fold=False, fuse=False)
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (200, 170, 3), dtype=np.uint8)
    out = predict_mask(pred, image, tile=192, margin=64)  # cores of 64 pixels, sides not multiples of 32
    assert out.shape == (200, 170) and out.dtype == np.uint8 and out.max() < C
    # the core at rows 64-128, columns 64-128 was predicted from rows 0-192, columns 0-170 of the image
    window = torch.from_numpy(np.ascontiguousarray(image[0:192, 0:170].transpose(2, 0, 1)))[None]
    expect = pred.logits(window).argmax(1)[0, 64:128, 64:128].numpy()
    np.testing.assert_array_equal(out[64:128, 64:128], expect)
    # whole-image prediction (tile larger than the image) also goes through the wrapper
    whole = predict_mask(pred, image, tile=1024)
    full = torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1)))[None]
    np.testing.assert_array_equal(whole, pred.logits(full).argmax(1)[0].numpy())


def test_flip_tta_of_mirror_symmetric_image_equals_plain_prediction():
    torch.manual_seed(4)
    model = build_model("resnet18", 5).eval()
    half = torch.randn(3, 3, 32, 16)
    x = torch.cat([half, half.flip(-1)], -1)  # mirror-symmetric images
    tta = with_tta(model, False, "flip")
    assert isinstance(tta, ClassificationTTA)
    with torch.inference_mode():
        torch.testing.assert_close(tta(x), model(x))
        y = torch.randn(3, 3, 32, 32)  # an ordinary image: the mean of both views
        torch.testing.assert_close(tta(y), (model(y) + model(y.flip(-1))) / 2)


def test_flip_translate_tta_is_airbenchs_average():
    torch.manual_seed(5)
    model = build_model("airnet", 5).eval()
    x = torch.randn(2, 3, 32, 32)
    tta = with_tta(model, False, "flip-translate")
    assert isinstance(tta, ClassificationTTA)

    def mirrors(v: torch.Tensor) -> torch.Tensor:
        return (model(v) + model(v.flip(-1))) / 2

    padded = F.pad(x, (1, 1, 1, 1), mode="reflect")
    up_left, down_right = padded[..., :32, :32], padded[..., 2:, 2:]
    assert torch.equal(up_left[..., 1:, 1:], x[..., :31, :31])  # the content moves one pixel down-right
    with torch.inference_mode():
        want = 0.5 * mirrors(x) + 0.25 * (mirrors(up_left) + mirrors(down_right))
        torch.testing.assert_close(tta(x), want)
        assert (tta(x) - with_tta(model, False, "flip")(x)).abs().max() > 1e-4


def test_with_tta_returns_the_model_when_nothing_to_average(fcn):
    assert with_tta(fcn, True, "none") is fcn
    assert isinstance(with_tta(fcn, True, "none", (0.75, 1.0)), SegmentationTTA)
    assert not with_tta(fcn, True, "d4").training


def test_bad_tta_options_are_one_line_config_errors(fcn):
    with pytest.raises(ConfigError, match="--tta"):
        with_tta(fcn, True, "d8")
    with pytest.raises(ConfigError, match="no rotations"):
        ClassificationTTA(fcn, "d4")
    with pytest.raises(ConfigError, match="--scales"):
        with_tta(fcn, False, "flip", (0.5, 1.0))
    with pytest.raises(ConfigError, match="--scales"):
        parse_scales("0.75,x")
    with pytest.raises(ConfigError, match="--scales"):
        parse_scales("0,1")
    assert parse_scales("0.75,1,1.25") == (0.75, 1.0, 1.25)
    assert parse_scales(None) == (1.0,)
