"""Detection of identical images that carry different labels (fcnlab.data.duplicates)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from fcnlab.data.classification import load_image_set
from fcnlab.data.duplicates import (
    DuplicateGroup,
    check_labelled_images,
    conflict_warning,
    file_digests,
    image_digests,
    label_conflicts,
)
from fcnlab.errors import DataError


def _images(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(n, 3, 8, 8), dtype=np.uint8)


def test_finds_only_groups_with_conflicting_labels():
    imgs = _images(6)
    imgs[3] = imgs[0]  # same pixels, labels 0 and 2: a conflict
    imgs[5] = imgs[1]  # same pixels, same label: harmless
    labels = [0, 1, 1, 2, 2, 1]
    files = [Path(f"{lab}_{i}.png") for i, lab in enumerate(labels)]
    groups = label_conflicts(image_digests(imgs), labels, files)
    assert groups == [DuplicateGroup((files[0], files[3]), (0, 2))]


def test_groups_keep_file_order_and_hold_all_members():
    imgs = _images(5)
    imgs[2] = imgs[4] = imgs[1]
    labels = [0, 1, 1, 3, 2]
    files = [Path(f"f{i}.png") for i in range(5)]
    groups = label_conflicts(image_digests(imgs), labels, files)
    assert len(groups) == 1 and [f.name for f in groups[0].files] == ["f1.png", "f2.png", "f4.png"]
    assert groups[0].labels == (1, 1, 2)


def test_no_duplicates_gives_no_warning():
    imgs = _images(4)
    assert check_labelled_images(imgs, [0, 1, 2, 3], [Path(f"{i}.png") for i in range(4)]) is None
    assert conflict_warning([]) is None


def test_warning_is_one_line_naming_every_file():
    groups = [
        DuplicateGroup((Path("10_363.png"), Path("41_87.png")), (10, 41)),
        DuplicateGroup((Path("33_161.png"), Path("48_309.png")), (33, 48)),
    ]
    line = conflict_warning(groups, "train_50")
    assert line is not None and "\n" not in line
    assert line.startswith("4 identical images in train_50 carry different labels: ")
    assert "10_363.png = 41_87.png (labels 10, 41); 33_161.png = 48_309.png (labels 33, 48)" in line


def test_pixel_digests_catch_reencoded_copies_that_file_digests_miss(tmp_path: Path):
    arr = _images(1)[0].transpose(1, 2, 0)
    Image.fromarray(arr).save(tmp_path / "3_0.png", compress_level=0)
    Image.fromarray(arr).save(tmp_path / "5_0.png", compress_level=9)  # same pixels, other bytes
    Image.fromarray(_images(1, seed=1)[0].transpose(1, 2, 0)).save(tmp_path / "5_1.png")
    data = load_image_set(tmp_path, num_classes=10, cache="off")
    files, labels = data.files, data.labels.tolist()
    assert label_conflicts(file_digests(files), labels, files) == []
    line = check_labelled_images(data.images, data.labels, data.files, tmp_path.name)
    assert line is not None and "3_0.png = 5_0.png (labels 3, 5)" in line


def test_unreadable_file_is_a_data_error(tmp_path: Path):
    with pytest.raises(DataError, match="missing.png"):
        file_digests([tmp_path / "missing.png"])


def test_mismatched_lengths_are_rejected():
    with pytest.raises(ValueError, match="differ in length"):
        label_conflicts(image_digests(_images(3)), [0, 1], [Path("a"), Path("b"), Path("c")])
