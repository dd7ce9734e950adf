"""``fcnlab miou`` through fcnlab.cli.main: course output, JSON, warnings and one-line errors."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from course_reference import load_course_reference
from fcnlab.cli.main import main
from fcnlab.data.mask_codec import write_mask


def make_set(root: Path, n: int, absent_water: bool = False, side: int = 16) -> tuple[Path, Path]:
    """n small square label masks and predictions that differ from them in one column."""
    gt, pred = root / "gt", root / "pred"
    for i in range(n):
        ids = (np.arange(side * side).reshape(side, side) // 3 % 7).astype(np.uint8)
        if absent_water:
            ids[ids == 4] = 5
        guess = ids.copy()
        guess[:, 0] = 1
        write_mask(gt / f"{i:04d}_mask.png", ids)
        write_mask(pred / f"{i:04d}_mask.png", guess)
    return gt, pred


def test_prints_the_course_lines_and_writes_json(tmp_path, capsys):
    gt, pred = make_set(tmp_path, 2, side=512)  # the course's script only reads 512x512 masks
    load_course_reference().main(["-g", str(gt), "-p", str(pred)])
    course_out = capsys.readouterr().out
    assert main(["miou", "--labels", str(gt), "--pred", str(pred), "--json", str(tmp_path / "out" / "r.json")]) == 0
    captured = capsys.readouterr()
    assert captured.out == course_out.rstrip("\n") + "\n"
    assert captured.err == ""
    payload = json.loads((tmp_path / "out" / "r.json").read_text())
    assert f"mean_iou: {payload['mean_iou']:f}" in captured.out
    assert payload["n_masks"] == 2 and len(payload["confusion"]) == 7
    assert sum(map(sum, payload["confusion"])) == 2 * 512 * 512


@pytest.mark.realdata
def test_red_pixels_reported_once(dlcv_root, tmp_path, capsys):
    gt, pred = tmp_path / "gt", tmp_path / "pred"
    gt.mkdir()
    pred.mkdir()
    for name in ("0176_mask.png", "0177_mask.png"):
        shutil.copy(dlcv_root / "p2_data" / "validation" / name, gt / name)
        shutil.copy(dlcv_root / "p2_data" / "validation" / name, pred / name)
    assert main(["miou", "-g", str(gt), "-p", str(pred)]) == 0
    captured = capsys.readouterr()
    warnings = [line for line in captured.err.splitlines() if "off-palette" in line]
    assert warnings == [
        (
            "fcnlab: warning: 2 masks hold 14 off-palette (red) pixels, counted as unknown: "
            "gt/0177_mask.png (7), pred/0177_mask.png (7)"
        )
    ]
    assert "class #0 : 1.00000" in captured.out  # identical masks (forest is absent from both)


def test_missing_predictions_exit_2_naming_them(tmp_path, capsys):
    gt, pred = make_set(tmp_path, 7)
    for i in (1, 2):
        (pred / f"{i:04d}_mask.png").unlink()
    assert main(["miou", "--labels", str(gt), "--pred", str(pred)]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == (
        f"fcnlab: error: 2 label masks have no prediction in {pred}: 0001_mask.png, "
        f"0002_mask.png; name each prediction like its label (NNNN_mask.png)\n"
    )


def test_missing_and_empty_folders_exit_2(tmp_path, capsys):
    gt, _ = make_set(tmp_path, 1)
    (tmp_path / "empty").mkdir()
    assert main(["miou", "--labels", str(gt), "--pred", str(tmp_path / "nope")]) == 2
    assert capsys.readouterr().err == f"fcnlab: error: {tmp_path / 'nope'}: folder does not exist\n"
    assert main(["miou", "--labels", str(tmp_path / "empty"), "--pred", str(gt)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"fcnlab: error: {tmp_path / 'empty'}: folder holds no label masks") and err.count("\n") == 1


def test_absent_class_is_reported(tmp_path, capsys):
    gt, pred = make_set(tmp_path, 2, absent_water=True)
    assert main(["miou", "--labels", str(gt), "--pred", str(pred)]) == 0
    captured = capsys.readouterr()
    assert "class #4 : nan" in captured.out and captured.out.endswith("mean_iou: nan\n")
    assert captured.err.startswith("fcnlab: warning: class 4 (water) absent from both labels and predictions")
    assert "mean over the 5 present classes" in captured.err


def test_workers_must_be_positive(tmp_path, capsys):
    gt, pred = make_set(tmp_path, 1)
    assert main(["miou", "--labels", str(gt), "--pred", str(pred), "--workers", "0"]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err == "fcnlab: error: option --workers: must be >= 1, got 0\n"
