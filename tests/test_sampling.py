"""Repeat-factor sampling of training tiles: factors, per-epoch frequencies, determinism, sharding."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from fcnlab.data.sampling import (
    epoch_indices,
    expected_counts,
    repeat_factors,
    shard,
    tile_class_fractions,
)


def test_tile_class_fractions_match_bincount():
    rng = np.random.default_rng(0)
    masks = rng.integers(0, 7, (70, 8, 9), dtype=np.uint8)
    frac = tile_class_fractions(masks, 7, chunk=16)
    for i in (0, 17, 69):
        np.testing.assert_allclose(frac[i], np.bincount(masks[i].ravel(), minlength=7) / 72)
    np.testing.assert_allclose(frac.sum(1), 1.0)


def test_repeat_factors_follow_the_rarest_class_present():
    # 10 tiles: class 0 in all, class 1 in 5, class 2 in 1 (tile 9); class 3 in tile 8 but below min_fraction
    frac = np.zeros((10, 4))
    frac[:, 0] = 1.0
    frac[5:, 1], frac[5:, 0] = 0.5, 0.5
    frac[9, 2], frac[9, 0] = 0.25, 0.25
    frac[8, 3], frac[8, 0] = 0.001, 0.499
    r = repeat_factors(frac, threshold=1.0, min_fraction=0.01)
    np.testing.assert_allclose(r[:5], 1.0)  # only common classes: factor 1
    np.testing.assert_allclose(r[5:9], math.sqrt(1 / 0.5))
    assert r[9] == pytest.approx(math.sqrt(1 / 0.1))  # the rarest class present sets the factor
    # only the listed classes count
    r1 = repeat_factors(frac, threshold=1.0, classes=[1], min_fraction=0.01)
    assert r1[9] == pytest.approx(math.sqrt(2)) and r1[0] == 1.0
    # a threshold below every frequency changes nothing
    np.testing.assert_allclose(repeat_factors(frac, threshold=0.05), 1.0)


def test_epoch_frequencies_match_the_weights():
    factors = np.array([1.0] * 12 + [2.0] * 6 + [4.0] * 2)
    n = len(factors)
    expected = expected_counts(factors)
    assert expected.sum() == pytest.approx(n)
    epochs = 500
    counts = np.zeros(n)
    for e in range(epochs):
        idx = epoch_indices(factors, e, seed=7)
        assert len(idx) == n  # an epoch keeps its length (the recipe's step budget)
        c = np.bincount(idx.numpy(), minlength=n)
        # systematic sampling: every tile floor(e_i) or ceil(e_i) times per epoch
        assert np.all(c >= np.floor(expected) - 1e-9) and np.all(c <= np.ceil(expected) + 1e-9)
        counts += c
    mean = counts / epochs
    # standard error of a mean of 500 Bernoulli-like draws is at most 0.5 / sqrt(500) = 0.022
    np.testing.assert_allclose(mean, expected, atol=0.09)
    # grouped by factor the means are much tighter
    for f in (1.0, 2.0, 4.0):
        assert mean[factors == f].mean() == pytest.approx(expected[factors == f][0], abs=0.04)


def test_tile_without_rare_classes_is_still_sampled():
    factors = np.array([1.0] + [3.0] * 9)  # the common tile expects 10 / 28 draws per epoch
    seen = sum(int((epoch_indices(factors, e, seed=0) == 0).sum()) for e in range(40))
    assert 5 <= seen <= 25  # about 14 in 40 epochs


def test_epoch_order_is_deterministic_in_seed_and_epoch():
    factors = np.linspace(1, 3, 50)
    a = epoch_indices(factors, 3, seed=1)
    assert torch.equal(a, epoch_indices(factors, 3, seed=1))  # a resumed run recomputes it
    assert not torch.equal(a, epoch_indices(factors, 4, seed=1))
    assert not torch.equal(a, epoch_indices(factors, 3, seed=2))
    # equal factors: every tile exactly once (a plain shuffle)
    assert sorted(epoch_indices(np.ones(30), 0, seed=0).tolist()) == list(range(30))


def test_shard_splits_an_epoch_over_ranks():
    idx = torch.arange(10)
    parts = [shard(idx, r, 3) for r in range(3)]
    assert all(len(p) == 4 for p in parts)
    assert set(torch.cat(parts).tolist()) == set(range(10))
    assert torch.equal(shard(idx, 0, 1), idx)


def test_training_batches_follow_the_factors_and_keep_the_step_count():
    from fcnlab.config import from_dict
    from fcnlab.runtime.distributed import DistInfo
    from fcnlab.training.state import epoch_batches

    cfg = from_dict({"task": "segment", "batch_size": 4, "sampling": "rare", "seed": 3})
    factors = np.array([1.0] * 8 + [3.0] * 4)
    plain = epoch_batches(12, cfg, 0, DistInfo())
    rare = epoch_batches(12, cfg, 0, DistInfo(), factors)
    assert len(rare) == len(plain) == 3  # the LR schedule's steps per epoch do not change
    assert torch.equal(torch.cat(rare), epoch_indices(factors, 0, 3, 12))
    assert torch.equal(torch.cat(epoch_batches(12, cfg, 0, DistInfo(), factors)), torch.cat(rare))  # resume
    two = [torch.cat(epoch_batches(12, cfg, 0, DistInfo(r, 2), factors)) for r in range(2)]
    assert sorted(torch.cat(two).tolist()) == sorted(torch.cat(rare).tolist())


def test_segment_task_computes_factors_from_the_training_masks(tmp_path):
    from fcnlab.config import from_dict
    from fcnlab.data.synthetic import make_segmentation_data
    from fcnlab.tasks import make_task

    data = make_segmentation_data(tmp_path / "d", n_train=6, n_val=1, size=32)
    base = {"task": "segment", "data": str(data / "train"), "val": str(data / "validation"), "cache": "off"}
    task = make_task(from_dict({**base, "sampling": "rare"}))
    train = task.load_train()
    expected = repeat_factors(tile_class_fractions(train.masks, 7), 1.0, [2, 4])
    np.testing.assert_allclose(task.sample_factors, expected)
    plain = make_task(from_dict(base))
    plain.load_train()
    assert plain.sample_factors is None
