"""End-to-end ``fcnlab segment`` on tiny synthetic land-cover tiles: train -> eval -> predict -> miou.

One fcn32s_resnet34 run (2 epochs on four 64x64 tiles) is trained once per module and shared.
"""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from fcnlab.cli.main import main
from fcnlab.data.mask_codec import PALETTE
from fcnlab.data.synthetic import land_cover_tile, make_segmentation_data
from train_once import segment_train_argv, train_once

#: trains and evaluates through the CLI: the full suite's, not the fast lane's (-m "not slow and not realdata")
pytestmark = pytest.mark.slow

COURSE_LINE = re.compile(r"class #(\d) : (\d\.\d{5}|nan)")

#: inference options: CPU, decoding in the main process (a few images)
CPU = ("--device", "cpu", "--workers", "0")


@pytest.fixture(scope="module")
def p2(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("p2")
    data = make_segmentation_data(root / "data", n_train=4, n_val=2, size=64)
    run = root / "run"
    rc = train_once(
        segment_train_argv(data, run, "--snapshot-epochs", "1,2", "--snapshot-images", "0001_sat.jpg,0000"),
        root / "cache",
    )
    assert rc == 0
    return {"root": root, "train": data / "train", "val": data / "validation", "run": run}


def parse_course_lines(text: str) -> tuple[list[str], str]:
    """The 6 ``class #i : ...`` values and the ``mean_iou`` value, checking the exact layout."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("class #0 : "))
    block = lines[start : start + 8]
    values = []
    for i, line in enumerate(block[:6]):
        m = COURSE_LINE.fullmatch(line)
        assert m and int(m.group(1)) == i, line
        values.append(m.group(2))
    assert block[6] == ""
    m = re.fullmatch(r"mean_iou: (\d\.\d{6}|nan)", block[7])
    assert m, block[7]
    return values, m.group(1)


def test_train_writes_run_folder_and_snapshots(p2):
    run = p2["run"]
    for name in ("config.yaml", "model.txt", "metrics.csv", "timing.csv", "last.pt", "best.pt"):
        assert (run / name).is_file(), name
    header = (run / "metrics.csv").read_text().splitlines()[0].split(",")
    assert {"val_miou", *[f"iou_{i}" for i in range(6)]} <= set(header)
    snaps = sorted(p.name for p in (run / "snapshots").iterdir())
    assert snaps == ["all_epochs.png", "epoch_001.npz", "epoch_001.png", "epoch_002.npz", "epoch_002.png"]
    metrics = {int(r["epoch"]): float(r["val_miou"]) for r in csv.DictReader(open(run / "metrics.csv"))}
    for epoch in (1, 2):  # the tiles chosen by name, in the order given; each epoch's mIoU beside its masks
        with np.load(run / "snapshots" / f"epoch_{epoch:03d}.npz") as z:
            assert list(z["names"]) == ["0001_sat.jpg", "0000_sat.jpg"] and z["preds"].shape == (2, 64, 64)
            assert float(z["miou"]) == pytest.approx(metrics[epoch], abs=1e-6)
    ckpt = torch.load(run / "last.pt", map_location="cpu", weights_only=True)
    assert ckpt["task"] == "segment" and ckpt["config"]["image_size"] == 64 and ckpt["epoch"] == 2


def test_eval_prints_course_lines_and_miou_agrees(p2, tmp_path, capsys):
    assert (
        main(
            ["segment", "eval", "--ckpt", str(p2["run"]), "--data", str(p2["val"]), "--device", "cpu", "--workers", "0"]
        )
        == 0
    )
    values, mean = parse_course_lines(capsys.readouterr().out)
    saved = json.loads((p2["run"] / "eval" / "validation" / "eval.json").read_text())
    for v, s in zip(values, saved["per_class_iou"], strict=True):
        assert (v == "nan" and np.isnan(s)) or float(v) == pytest.approx(s, abs=5e-6)
    assert (p2["run"] / "eval" / "validation" / "per_class_iou.md").is_file()
    # the course's evaluator on the predicted mask files gives the same numbers
    masks = tmp_path / "masks"
    assert (
        main(["segment", "predict", "--ckpt", str(p2["run"]), "--images", str(p2["val"]), "--out", str(masks), *CPU])
        == 0
    )
    capsys.readouterr()
    assert main(["miou", "--labels", str(p2["val"]), "--pred", str(masks)]) == 0
    values2, mean2 = parse_course_lines(capsys.readouterr().out)
    assert (values2, mean2) == (values, mean)


def test_eval_tiles_images_larger_than_tile_and_batches_the_rest(p2, tmp_path, monkeypatch):
    import fcnlab.infer.tiling
    from course_reference import confusion_counts
    from fcnlab.data.mask_codec import write_mask
    from fcnlab.infer.predictor import load_predictor

    data = tmp_path / "data"
    data.mkdir()
    rng = np.random.default_rng(3)
    sizes = {"0001": (320, 320), "0002": (320, 320), "0003": (64, 64)}  # two large ones batch together
    pairs = {}
    for stem, (h, w) in sizes.items():
        image, ids = land_cover_tile(max(h, w), rng)
        Image.fromarray(image[:h, :w]).save(data / f"{stem}_sat.png")
        write_mask(data / f"{stem}_mask.png", ids[:h, :w])
        pairs[stem] = (image[:h, :w], ids[:h, :w])
    real = fcnlab.infer.tiling.predict_mask
    calls = []

    def spy(pred, image, tile=1024, margin=64):
        calls.append((image.shape, tile))
        return real(pred, image, tile=tile, margin=margin)

    monkeypatch.setattr(fcnlab.infer.tiling, "predict_mask", spy)
    assert (
        main(
            [
                "segment",
                "eval",
                "--ckpt",
                str(p2["run"]),
                "--data",
                str(data),
                "--tile",
                "192",
                "--batch-size",
                "2",
                *CPU,
            ]
        )
        == 0
    )
    # only the two images over --tile went through the tiled path; the 64x64 one ran whole
    assert calls == [((320, 320, 3), 192), ((320, 320, 3), 192)]
    mat = np.array(json.loads((p2["run"] / "eval" / "data" / "eval.json").read_text())["confusion_matrix"])
    assert mat.sum() == 2 * 320 * 320 + 64 * 64
    pred = load_predictor(p2["run"], "cpu", task="segment")
    expected = sum(confusion_counts(ids, real(pred, image, tile=192), 7) for image, ids in pairs.values())
    assert np.array_equal(mat, expected)


def test_eval_refuses_a_tile_too_small_in_one_line(p2, capsys):
    assert main(["segment", "eval", "--ckpt", str(p2["run"]), "--data", str(p2["val"]), "--tile", "100", *CPU]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--tile" in err and "got 100" in err


def test_predict_keeps_any_input_size_and_tiles_large_images(p2, tmp_path):
    images = tmp_path / "images"
    images.mkdir()
    rng = np.random.default_rng(1)
    sizes = {"0007_sat.jpg": (70, 100), "field.png": (96, 96), "big.png": (200, 170)}  # (height, width)
    for name, (h, w) in sizes.items():
        tile, _ = land_cover_tile(max(h, w), rng)
        Image.fromarray(tile[:h, :w]).save(images / name)
    out = tmp_path / "masks"
    assert (
        main(
            [
                "segment",
                "predict",
                "--ckpt",
                str(p2["run"] / "best.pt"),
                "--images",
                str(images),
                "--out",
                str(out),
                "--tile",
                "160",
                *CPU,
            ]
        )
        == 0
    )
    expected = {"0007_mask.png": (70, 100), "field_mask.png": (96, 96), "big_mask.png": (200, 170)}
    assert sorted(p.name for p in out.iterdir()) == sorted(expected)
    palette = {tuple(int(v) for v in c) for c in PALETTE}
    for name, (h, w) in expected.items():
        arr = np.asarray(Image.open(out / name).convert("RGB"))
        assert arr.shape == (h, w, 3), name
        assert {tuple(int(v) for v in c) for c in np.unique(arr.reshape(-1, 3), axis=0)} <= palette


def test_predict_never_writes_into_the_input_folder(p2, capsys):
    before = {p.name: p.stat().st_mtime_ns for p in p2["val"].iterdir()}
    assert (
        main(
            [
                "segment",
                "predict",
                "--ckpt",
                str(p2["run"]),
                "--images",
                str(p2["val"]),
                "--out",
                str(p2["val"]),
                "--device",
                "cpu",
            ]
        )
        == 2
    )
    assert "input folder" in capsys.readouterr().err
    assert {p.name: p.stat().st_mtime_ns for p in p2["val"].iterdir()} == before


def test_predict_with_a_bad_checkpoint_creates_no_output_folder(tmp_path: Path, capsys):
    from fcnlab.cli.main import main
    from fcnlab.data.synthetic import make_segmentation_data

    data = make_segmentation_data(tmp_path / "d", n_train=1, n_val=1, size=64)
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    out = tmp_path / "masks"
    assert (
        main(["segment", "predict", "--ckpt", str(bad), "--images", str(data / "validation"), "--out", str(out)]) == 2
    )
    assert not out.exists()
    assert "bad.pt" in capsys.readouterr().err
