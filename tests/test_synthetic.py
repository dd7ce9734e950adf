"""Synthetic data sets: exact course formats, determinism, class shares and learnability."""

from __future__ import annotations

import csv
import hashlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from sklearn.neighbors import KNeighborsClassifier

from fcnlab.data.mask_codec import CLASS_NAMES, PALETTE
from fcnlab.data.synthetic import (
    class_image,
    land_cover_tile,
    make_classification_data,
    make_segmentation_data,
)
from fcnlab.errors import ConfigError, DataError

COURSE_PALETTE = {(0, 255, 255), (255, 255, 0), (255, 0, 255), (0, 255, 0), (0, 0, 255), (255, 255, 255), (0, 0, 0)}


def _digests(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="module")
def p1(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_classification_data(
        tmp_path_factory.mktemp("p1"), num_classes=50, train_per_class=2, val_per_class=1, seed=3
    )


@pytest.fixture(scope="module")
def p2(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_segmentation_data(tmp_path_factory.mktemp("p2"), n_train=3, n_val=2, size=64, seed=3)


def test_classification_layout(p1: Path) -> None:
    train = {p.name for p in (p1 / "train_50").iterdir()}
    val = {p.name for p in (p1 / "val_50").iterdir()}
    assert train == {f"{c}_{i}.png" for c in range(50) for i in (0, 1)}
    assert val == {f"{c}_2.png" for c in range(50)}
    assert sorted(p.name for p in p1.iterdir()) == ["train_50", "val_50", "val_gt.csv"]
    for name in ("0_0.png", "49_1.png"):
        with Image.open(p1 / "train_50" / name) as img:
            assert (img.format, img.mode, img.size) == ("PNG", "RGB", (32, 32))


def test_classification_csv_agrees_with_files(p1: Path) -> None:
    lines = (p1 / "val_gt.csv").read_text().splitlines()
    assert lines[0] == "filename,label"
    rows = list(csv.DictReader(lines))
    assert len(rows) == 50
    assert {r["filename"] for r in rows} == {p.name for p in (p1 / "val_50").iterdir()}
    assert all(int(r["label"]) == int(r["filename"].split("_")[0]) for r in rows)


def test_classification_deterministic(p1: Path, tmp_path: Path) -> None:
    again = make_classification_data(tmp_path / "a", num_classes=50, train_per_class=2, val_per_class=1, seed=3)
    assert _digests(again) == _digests(p1)
    other = make_classification_data(tmp_path / "b", num_classes=50, train_per_class=2, val_per_class=1, seed=4)
    assert _digests(other)["val_gt.csv"] == _digests(p1)["val_gt.csv"]
    assert _digests(other)["train_50/0_0.png"] != _digests(p1)["train_50/0_0.png"]


def test_classes_learnable_but_images_vary() -> None:
    """A 1-nearest-neighbour classifier on raw pixels beats chance (0.02) by far; no image repeats."""

    def draw(split: int, count: int) -> tuple[np.ndarray, np.ndarray]:
        images = [class_image(c, 32, np.random.default_rng([split, c, i])) for c in range(50) for i in range(count)]
        return np.stack(images).reshape(len(images), -1) / 255.0, np.repeat(np.arange(50), count)

    x_train, y_train = draw(0, 8)
    x_val, y_val = draw(1, 3)
    accuracy = KNeighborsClassifier(n_neighbors=1).fit(x_train, y_train).score(x_val, y_val)
    assert accuracy > 0.5
    assert len({row.tobytes() for row in x_train}) == len(x_train)
    # images of one class differ by more than noise: random shifts move the pattern
    assert np.abs(x_train[0] - x_train[1]).mean() > 0.1


def test_segmentation_layout(p2: Path) -> None:
    assert sorted(p.name for p in p2.iterdir()) == ["train", "validation"]
    assert sorted(p.name for p in (p2 / "train").iterdir()) == [
        f"{i:04d}_{kind}" for i in range(3) for kind in ("mask.png", "sat.jpg")
    ]
    assert sorted(p.name for p in (p2 / "validation").iterdir()) == [
        "0000_mask.png",
        "0000_sat.jpg",
        "0001_mask.png",
        "0001_sat.jpg",
    ]
    for path in (p2 / "train").iterdir():
        with Image.open(path) as img:
            expected = "JPEG" if path.suffix == ".jpg" else "PNG"
            assert (img.format, img.mode, img.size) == (expected, "RGB", (64, 64))


def test_masks_hold_only_palette_colours(p2: Path) -> None:
    assert {tuple(int(v) for v in PALETTE[i]) for i in range(7)} == COURSE_PALETTE
    for path in sorted(p2.rglob("*_mask.png")):
        colours = {tuple(c) for c in np.asarray(Image.open(path)).reshape(-1, 3).tolist()}
        assert colours <= COURSE_PALETTE, path


def test_segmentation_deterministic(p2: Path, tmp_path: Path) -> None:
    again = make_segmentation_data(tmp_path / "a", n_train=3, n_val=2, size=64, seed=3)
    assert _digests(again) == _digests(p2)
    other = make_segmentation_data(tmp_path / "b", n_train=1, n_val=1, size=64, seed=4)
    assert _digests(other)["train/0000_mask.png"] != _digests(p2)["train/0000_mask.png"]


def test_class_shares_like_real_data() -> None:
    ids = np.concatenate([land_cover_tile(48, np.random.default_rng(i))[1].ravel() for i in range(60)])
    shares = np.bincount(ids, minlength=7) / ids.size
    assert shares.argmax() == CLASS_NAMES.index("agriculture")
    assert 0.35 < shares[1] < 0.75
    assert shares[6] < 0.05
    assert (shares[:6] > 0).all()


def test_satellite_texture_predicts_mask() -> None:
    """Per-class mean colours differ enough that a nearest-centroid pixel classifier mostly works."""
    tiles = [land_cover_tile(96, np.random.default_rng(100 + i)) for i in range(12)]
    pixels = np.concatenate(
        [np.asarray(Image.fromarray(img).resize((24, 24), Image.Resampling.BOX)).reshape(-1, 3) for img, _ in tiles]
    ).astype(np.float64)
    labels = np.concatenate([ids[2::4, 2::4].ravel() for _, ids in tiles])
    present = np.unique(labels)
    centroids = np.stack([pixels[labels == c].mean(axis=0) for c in present])
    predicted = present[((pixels[:, None, :] - centroids[None]) ** 2).sum(-1).argmin(axis=1)]
    assert (predicted == labels).mean() > 0.85


def test_refuses_folder_with_files(p1: Path, p2: Path, tmp_path: Path) -> None:
    with pytest.raises(DataError, match="already"):
        make_classification_data(p1, num_classes=2, train_per_class=1, val_per_class=1)
    with pytest.raises(DataError, match="already holds files"):
        make_segmentation_data(p2, n_train=1, n_val=1, size=32)
    (tmp_path / "validation").mkdir()
    (tmp_path / "validation" / "keep.txt").write_text("mine")
    with pytest.raises(DataError, match="validation"):
        make_segmentation_data(tmp_path, n_train=1, n_val=1, size=32)
    assert not (tmp_path / "train").exists()  # nothing written when refused
    (tmp_path / "train").mkdir()
    (tmp_path / "train" / "keep.txt").write_text("mine")
    make_segmentation_data(tmp_path, n_train=1, n_val=1, size=32, overwrite=True)
    assert (tmp_path / "train" / "keep.txt").read_text() == "mine"
    assert (tmp_path / "train" / "0000_sat.jpg").is_file()


@pytest.mark.parametrize(
    "kwargs", [{"num_classes": 0}, {"num_classes": 101}, {"train_per_class": 0}, {"size": 4}, {"val_per_class": 1.5}]
)
def test_bad_classification_options(tmp_path: Path, kwargs: dict) -> None:
    name = next(iter(kwargs))
    with pytest.raises(ConfigError, match=name):
        make_classification_data(tmp_path, **kwargs)


def test_bad_segmentation_options(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="n_train"):
        make_segmentation_data(tmp_path, n_train=0)
    with pytest.raises(ConfigError, match="size"):
        make_segmentation_data(tmp_path, size=8)


@pytest.mark.realdata
def test_formats_match_real_data(dlcv_root: Path, p1: Path, p2: Path) -> None:
    real_gt = (dlcv_root / "p1_data" / "val_gt.csv").read_text().splitlines()
    assert real_gt[0] == (p1 / "val_gt.csv").read_text().splitlines()[0]
    for real, ours in (
        (dlcv_root / "p1_data" / "train_50" / "0_0.png", p1 / "train_50" / "0_0.png"),
        (dlcv_root / "p2_data" / "train" / "0000_sat.jpg", p2 / "train" / "0000_sat.jpg"),
        (dlcv_root / "p2_data" / "train" / "0000_mask.png", p2 / "train" / "0000_mask.png"),
    ):
        with Image.open(real) as a, Image.open(ours) as b:
            assert (a.format, a.mode) == (b.format, b.mode), ours.name
