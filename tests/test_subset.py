"""``--limit N``: a seeded class-stratified sample for P1, a seeded random sample for P2 (not the first N)."""

from __future__ import annotations

from collections import Counter

import pytest

from fcnlab.data.classification import load_image_set
from fcnlab.data.segmentation import load_tile_set
from fcnlab.data.subset import random_subset, stratified_subset
from fcnlab.data.synthetic import make_classification_data, make_segmentation_data


def test_stratified_subset_balances_the_classes():
    labels = [c for c in range(5) for _ in range(10)]  # sorted by class, as a folder's files are
    keep = stratified_subset(labels, 12, seed=0)
    assert keep == sorted(set(keep)) and len(keep) == 12
    counts = Counter(labels[i] for i in keep)
    assert set(counts) == set(range(5)) and max(counts.values()) - min(counts.values()) <= 1
    assert stratified_subset(labels, 12, seed=0) == keep  # seeded: the same draw again
    assert stratified_subset(labels, 12, seed=1) != keep


def test_stratified_subset_fewer_than_classes_and_a_small_class():
    labels = [0] * 20 + [1] * 2 + [2] * 20
    assert len(set(labels[i] for i in stratified_subset(labels, 2, seed=3))) == 2  # 2 distinct classes
    counts = Counter(labels[i] for i in stratified_subset(labels, 30, seed=0))
    assert counts[1] == 2 and counts[0] + counts[2] == 28 and abs(counts[0] - counts[2]) <= 1
    assert stratified_subset(labels, 0, seed=0) == list(range(42))
    assert stratified_subset(labels, 100, seed=0) == list(range(42))


def test_random_subset_is_seeded_and_not_the_first_files():
    keep = random_subset(100, 10, seed=0)
    assert keep == sorted(set(keep)) and len(keep) == 10 and keep != list(range(10))
    assert random_subset(100, 10, seed=0) == keep and random_subset(100, 10, seed=5) != keep
    assert random_subset(7, 0, seed=0) == random_subset(7, 9, seed=0) == list(range(7))


def test_p1_limit_keeps_every_class(tmp_path):
    root = make_classification_data(tmp_path / "p1", num_classes=6, train_per_class=5, val_per_class=1, size=8)
    data = load_image_set(root / "train_50", limit=12, cache="off", seed=0)
    assert len(data) == 12 and Counter(data.labels.tolist()) == {c: 2 for c in range(6)}
    again = load_image_set(root / "train_50", limit=12, cache="off", seed=0)
    assert again.files == data.files
    assert load_image_set(root / "train_50", limit=12, cache="off", seed=4).files != data.files


def test_p2_limit_draws_at_random(tmp_path):
    root = make_segmentation_data(tmp_path / "p2", n_train=10, n_val=1, size=32)
    data = load_tile_set(root / "train", limit=3, cache="off", seed=0)
    names = [f.name for f in data.files]
    assert len(names) == 3 and names == sorted(names)
    assert names != ["0000_sat.jpg", "0001_sat.jpg", "0002_sat.jpg"]
    assert data.masks.shape[0] == 3


@pytest.mark.realdata
def test_real_p1_limit_50_is_one_image_per_class(dlcv_root):
    data = load_image_set(dlcv_root / "p1_data" / "train_50", limit=50, cache="off", seed=0)
    assert sorted(data.labels.tolist()) == list(range(50))
