"""Batch augmentation: each policy operation equals torchvision's per image, per-sample randomness,
random erasing, CutMix/MixUp soft targets (the soft-target loss is tested in test_losses.py)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torchvision.transforms import v2

from fcnlab.data.batch_augment import AugmentPolicy, build_batch_augment, random_erasing


def _images(b: int = 4, size: int = 16, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(0, 256, (b, 3, size, size), dtype=torch.uint8, generator=g)
    x[0] = x[0] // 64 * 64 + 32  # few grey levels: exercises equalize / autocontrast edge cases
    x[1] = 128  # a flat image (autocontrast and equalize leave it as it is)
    return x


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


TA_OPS = list(v2.TrivialAugmentWide._AUGMENTATION_SPACE)


@pytest.mark.parametrize("name", TA_OPS)
@pytest.mark.parametrize("subset", [True, False], ids=["subset", "where"])
def test_each_operation_equals_torchvision_per_image(name, subset):
    """Fixed operation and magnitudes (several bins, both signs) against v2's kernel on each image."""
    x = _images()
    ta = v2.TrivialAugmentWide()
    pol = AugmentPolicy("trivialaugment")
    table, signed = pol.magnitude_table(16, 16)
    k = pol.ids[name]
    levels = [0, 5, 17, 30] if table[k].any() else [0]
    for level in levels:
        for sign in (1, -1) if signed[k] else (1,):
            m = float(table[k, level]) * sign
            ref = torch.stack(
                [
                    ta._apply_image_or_video_transform(img, name, m, interpolation=ta.interpolation, fill=ta._fill)
                    for img in x
                ]
            ).float()
            got = pol.apply(x.float(), torch.full((4,), k), torch.full((4,), m), subset=subset)
            diff = (got - ref).abs()
            # colour blends may round one level differently (float operation order); never more
            assert diff.max() <= 1, (name, m, diff.max())
            assert (diff > 0).float().mean() < 0.01, (name, m)
            assert got.min() >= 0 and got.max() <= 255 and torch.equal(got, got.round())


def test_mixed_operations_in_one_batch_equal_torchvision():
    """A batch where every sample has its own operation and magnitude (the vectorised path)."""
    x = _images(b=14, size=12, seed=3)
    pol = AugmentPolicy("trivialaugment")
    ta = v2.TrivialAugmentWide()
    op = torch.arange(14)  # every operation once
    table, _ = pol.magnitude_table(12, 12)
    mag = table[op, 20] * torch.where(torch.arange(14) % 2 == 0, 1.0, -1.0)
    got = pol.apply(x.float(), op, mag)
    for i in range(14):
        ref = ta._apply_image_or_video_transform(
            x[i], pol.names[int(op[i])], float(mag[i]), interpolation=ta.interpolation, fill=ta._fill
        ).float()
        assert (got[i] - ref).abs().max() <= 1, pol.names[int(op[i])]


def test_trivialaugment_draws_per_sample_and_repeats_with_the_generator():
    x = _images(b=64, size=8)
    pol = AugmentPolicy("trivialaugment")
    op, mag = pol.draw(64, 8, 8, _gen(1), torch.device("cpu"))
    assert len(op.unique()) > 8  # many different operations in one batch
    assert len(mag.unique()) > 8
    a = pol(x, _gen(1))
    b = pol(x, _gen(1))
    c = pol(x, _gen(2))
    assert a.dtype == torch.float32 and torch.equal(a, b) and not torch.equal(a, c)
    changed = (a != x.float()).flatten(1).any(1)
    assert 0 < changed.sum() < 64  # some samples drew an identity-like operation, most changed


def test_randaugment_applies_num_ops_rounds_at_the_fixed_magnitude():
    x = _images(b=8, size=8)
    assert torch.equal(AugmentPolicy("randaugment", num_ops=0)(x, _gen()), x.float())
    pol = AugmentPolicy("randaugment", num_ops=2, magnitude=9)
    table, signed = pol.magnitude_table(8, 8)
    g = _gen(4)
    op1, mag1 = pol.draw(8, 8, 8, g, torch.device("cpu"))
    op2, mag2 = pol.draw(8, 8, 8, g, torch.device("cpu"))
    assert torch.equal(mag1.abs(), table[op1, 9].abs())
    expect = pol.apply(pol.apply(x.float(), op1, mag1), op2, mag2)
    assert torch.equal(pol(x, _gen(4)), expect)
    with pytest.raises(ValueError, match="magnitude"):
        AugmentPolicy("randaugment", magnitude=31)


def test_random_erasing_one_rectangle_per_sample():
    x = torch.full((32, 3, 16, 16), 200.0)
    fill = (10.0, 20.0, 30.0)
    assert torch.equal(random_erasing(x, 0.0, _gen(), fill), x)
    out = random_erasing(x, 1.0, _gen(), fill)
    erased = (out != x).all(1)  # (B, H, W): every channel changed
    assert torch.equal((out != x).any(1), erased)
    areas = erased.flatten(1).sum(1).float() / 256
    assert (areas > 0).float().mean() > 0.9  # nearly every sample found a rectangle that fits
    for i in range(32):
        if areas[i] == 0:
            continue
        rows, cols = erased[i].any(1).nonzero(), erased[i].any(0).nonzero()
        h, w = rows.max() - rows.min() + 1, cols.max() - cols.min() + 1
        assert erased[i].sum() == h * w  # a filled rectangle
        assert 0.01 <= areas[i] <= 0.4
        assert torch.equal(out[i, :, rows.min(), cols.min()], torch.tensor(fill))
    assert len({tuple(e.nonzero()[0].tolist()) for e in erased if e.any()}) > 5  # their own places


def test_builder_off_is_none_and_checks_its_arguments():
    assert build_batch_augment() is None
    with pytest.raises(ValueError, match="policy"):
        build_batch_augment("autoaugment")
    with pytest.raises(ValueError, match="probabilities"):
        build_batch_augment(random_erasing=1.5)


@pytest.mark.parametrize("kw", [dict(cutmix=1.0), dict(mixup=0.4), dict(cutmix=1.0, mixup=1.0, mix_prob=0.5)])
def test_mixing_targets_are_probabilities(kw):
    x, y = _images(b=8, size=8), torch.arange(8)
    aug = build_batch_augment(num_classes=10, **kw)
    assert aug.soft_targets
    torch.manual_seed(0)
    for _ in range(5):
        images, t = aug(x, y, _gen())
        assert t.shape == (8, 10) and images.shape == x.shape and images.dtype == torch.float32
        torch.testing.assert_close(t.sum(1), torch.ones(8))
        assert (t >= 0).all()
        assert ((t > 0).sum(1) <= 2).all()  # own class and the partner's


def test_mixup_image_is_the_convex_combination():
    x, y = _images(b=6, size=8), torch.arange(6)
    torch.manual_seed(1)
    images, t = build_batch_augment(mixup=1.0, num_classes=6)(x, y, _gen())
    lam = t[0, 0]  # sample 0 keeps lam of itself and 1 - lam of its partner (sample 5: the batch rolled by 1)
    assert 0 < lam < 1
    torch.testing.assert_close(t[0, 5], 1 - lam)
    xf = x.float()
    torch.testing.assert_close(images, lam * xf + (1 - lam) * xf.roll(1, 0))


def test_cutmix_pastes_a_box_whose_area_is_the_target_weight():
    x, y = _images(b=6, size=16), torch.arange(6)
    torch.manual_seed(2)
    images, t = build_batch_augment(cutmix=1.0, num_classes=6)(x, y, _gen())
    xf, partner = x.float(), x.float().roll(1, 0)
    from_partner = (images == partner).all(1) & (images != xf).any(1)
    assert torch.equal((images == xf).all(1) | (images == partner).all(1), torch.ones_like(from_partner))
    # the partner's share of the pixels (a box, same for the batch) is its weight in the target
    torch.testing.assert_close(t[0, 5], 1 - t[0, 0])
    box = (images != xf).any(1)[2]  # sample 2: images differ from partner everywhere on random data
    assert torch.isclose(box.float().mean(), t[2, 1], atol=1e-6)


def test_mix_prob_zero_is_identity_with_one_hot_targets():
    x, y = _images(b=4, size=8), torch.tensor([3, 1, 0, 2])
    images, t = build_batch_augment(cutmix=1.0, mixup=1.0, mix_prob=0.0, num_classes=5)(x, y, _gen())
    assert torch.equal(images, x.float())
    assert torch.equal(t, F.one_hot(y, 5).float())


def test_full_pipeline_repeats_with_the_same_generator_and_global_seed():
    x, y = _images(b=8, size=8), torch.arange(8)
    aug = build_batch_augment("trivialaugment", random_erasing=0.5, cutmix=1.0, mixup=0.5, num_classes=8)
    torch.manual_seed(3)
    a = aug(x, y, _gen(9))
    torch.manual_seed(3)
    b = aug(x, y, _gen(9))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
