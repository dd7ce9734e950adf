"""evaluate_masks: equal to the course's script on real masks, pairing rules and bad input."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from course_reference import load_course_reference
from fcnlab.data.mask_codec import CODE_TO_CLASS, class_to_rgb, read_mask, write_mask
from fcnlab.errors import DataError
from fcnlab.evaluate.mask_folders import evaluate_masks, fold_codes, mask_key, pair_masks
from fcnlab.tasks.metrics import format_course_lines

REAL_IDS = ("0003", "0010", "0042", "0100", "0150", "0177", "0200", "0256")


def perturb(ids: np.ndarray, seed: int) -> np.ndarray:
    """A plausible prediction: shifted labels with 10% random classes (unknown included)."""
    rng = np.random.default_rng(seed)
    out = np.roll(ids, (5 * seed - 7, 3), axis=(0, 1))
    noise = rng.random(out.shape) < 0.1
    out[noise] = rng.integers(0, 7, size=int(noise.sum()))
    return out


@pytest.fixture(scope="module")
def real_pair(dlcv_root, tmp_path_factory):
    """8 real validation masks (0177 holds red pixels) plus one satellite image, and perturbed predictions."""
    root = tmp_path_factory.mktemp("real")
    gt, pred = root / "gt", root / "pred"
    gt.mkdir()
    src = dlcv_root / "p2_data" / "validation"
    shutil.copy(src / "0003_sat.jpg", gt / "0003_sat.jpg")  # not a mask: skipped
    for i, key in enumerate(REAL_IDS):
        shutil.copy(src / f"{key}_mask.png", gt / f"{key}_mask.png")
        ids, _ = read_mask(src / f"{key}_mask.png")
        rgb = class_to_rgb(perturb(ids, i))
        if i == 3:
            rgb[10:12, 20:22] = (255, 0, 0)  # red pixels in a prediction count as unknown too
        pred.mkdir(exist_ok=True)
        Image.fromarray(rgb).save(pred / f"{key}_mask.png")
    return gt, pred


def tiny_set(root: Path, names_gt, names_pred, size=(8, 8)) -> tuple[Path, Path]:
    gt, pred = root / "gt", root / "pred"
    gt.mkdir(exist_ok=True)
    pred.mkdir(exist_ok=True)
    ids = (np.arange(size[0] * size[1]).reshape(size) % 6).astype(np.uint8)
    for name in names_gt:
        write_mask(gt / name, ids)
    for name in names_pred:
        write_mask(pred / name, ids)
    return gt, pred


@pytest.mark.realdata
def test_equals_course_script_on_real_masks(real_pair, capsys):
    gt, pred = real_pair
    expected = load_course_reference().main(["-g", str(gt), "-p", str(pred)])
    printed = capsys.readouterr().out
    result = evaluate_masks(gt, pred, workers=2)
    assert abs(result.mean - expected) < 1e-9
    assert format_course_lines(result) + "\n\n" == printed
    assert result.n_masks == len(REAL_IDS) and result.absent == []
    assert int(result.confusion.sum()) == len(REAL_IDS) * 512 * 512
    red_lines = [w for w in result.warnings if "off-palette (red)" in w]
    assert len(red_lines) == 1
    assert "gt/0177_mask.png (7)" in red_lines[0] and "pred/0100_mask.png (4)" in red_lines[0]


@pytest.mark.realdata
def test_thread_count_does_not_change_the_result(real_pair):
    gt, pred = real_pair
    one = evaluate_masks(gt, pred, workers=1)
    three = evaluate_masks(gt, pred, workers=3)
    assert np.array_equal(one.confusion, three.confusion) and one.mean == three.mean


def test_fold_codes_maps_red_and_black_to_unknown():
    counts = np.zeros((8, 8), dtype=np.int64)
    counts[4, 3] = 5  # red label, cyan prediction
    counts[0, 4] = 2  # black label, red prediction
    counts[3, 3] = 1
    mat = fold_codes(counts)
    assert mat[6, 0] == 5 and mat[6, 6] == 2 and mat[0, 0] == 1 and mat.sum() == 8
    assert CODE_TO_CLASS[3] == 0


def test_pairing_by_name(tmp_path):
    assert mask_key(Path("0001_mask.png")) == "0001" == mask_key(Path("0001.png"))
    gt, pred = tiny_set(tmp_path, ["0001_mask.png", "0002_mask.png"], ["0001_mask.png", "0002.png", "0009.png"])
    pairs, warnings = pair_masks(gt, pred)
    assert [(a.name, b.name) for a, b in pairs] == [("0001_mask.png", "0001_mask.png"), ("0002_mask.png", "0002.png")]
    assert len(warnings) == 1 and warnings[0].startswith("1 prediction in ")
    assert "has no label mask" in warnings[0] and warnings[0].endswith("is ignored: 0009.png")
    result = evaluate_masks(gt, pred)
    assert result.mean == pytest.approx(1.0) and result.warnings[0] == warnings[0]


def test_missing_predictions_are_listed(tmp_path):
    names = [f"{i:04d}_mask.png" for i in range(8)]
    gt, pred = tiny_set(tmp_path, names, names[7:])
    with pytest.raises(
        DataError,
        match=r"^7 label masks have no prediction in .*pred: 0000_mask\.png, "
        r"0001_mask\.png, 0002_mask\.png, 0003_mask\.png, 0004_mask\.png, "
        r"\.\.\. \(first 5 of 7\)",
    ):
        evaluate_masks(gt, pred)


def test_bad_folders(tmp_path):
    gt, pred = tiny_set(tmp_path, ["0001_mask.png"], [])
    with pytest.raises(DataError, match=r"pred: folder holds no predicted masks"):
        evaluate_masks(gt, pred)
    with pytest.raises(DataError, match=r"nowhere: folder does not exist"):
        evaluate_masks(tmp_path / "nowhere", gt)
    (pred / "0001_sat.jpg").write_bytes(b"x")
    with pytest.raises(DataError, match=r"pred: folder holds no predicted masks \(expected NNNN_mask\.png"):
        evaluate_masks(gt, pred)


def test_duplicate_masks_in_one_folder(tmp_path):
    gt, pred = tiny_set(tmp_path, ["0001_mask.png"], ["0001_mask.png", "0001.png"])
    with pytest.raises(DataError, match=r"0001\.png and 0001_mask\.png are the same mask"):
        evaluate_masks(gt, pred)


def test_size_mismatch_names_the_file(tmp_path):
    gt, pred = tiny_set(tmp_path, ["0001_mask.png", "0002_mask.png"], ["0001_mask.png"])
    write_mask(pred / "0002_mask.png", np.zeros((4, 8), dtype=np.uint8))
    with pytest.raises(
        DataError,
        match=r"0002_mask\.png: prediction is 8x4 pixels but its label .*0002_mask\.png "
        r"is 8x8",
    ):
        evaluate_masks(gt, pred, workers=2)


def test_jpeg_prediction_is_refused(tmp_path):
    gt, pred = tiny_set(tmp_path, ["0001_mask.png"], [])
    Image.fromarray(class_to_rgb(np.zeros((8, 8), dtype=np.uint8))).save(pred / "0001_mask.jpg")
    with pytest.raises(DataError, match=r"0001_mask\.jpg: masks must be lossless palette PNGs"):
        evaluate_masks(gt, pred)
