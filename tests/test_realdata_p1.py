"""P1 on the real course data: label files, duplicate images, and the CLI end to end on a small subset.

The subset (5 training and 2 validation images per class, copied into a temporary folder) keeps every
class (``--limit`` draws a class-stratified sample too, but of random indices).
"""

from __future__ import annotations

import csv
import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from fcnlab.cli.main import main
from fcnlab.data.classification import load_image_set, scan_folder
from fcnlab.data.duplicates import check_labelled_images, conflict_warning, file_digests, label_conflicts
from train_once import train_once

pytestmark = pytest.mark.realdata

CPU = ("--device", "cpu", "--workers", "0")
DUPLICATES = [("10_363.png", "41_87.png"), ("33_161.png", "48_309.png")]


def _rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def subset(dlcv_root: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """5 train images (indices 0-4) and 2 val images (450, 451) of each of the 50 classes, with val_gt.csv."""
    src = dlcv_root / "p1_data"
    root = tmp_path_factory.mktemp("p1_subset")
    train, val = root / "train_50", root / "val_50"
    train.mkdir()
    val.mkdir()
    for label in range(50):
        for index in range(5):
            shutil.copyfile(src / "train_50" / f"{label}_{index}.png", train / f"{label}_{index}.png")
        for index in (450, 451):
            shutil.copyfile(src / "val_50" / f"{label}_{index}.png", val / f"{label}_{index}.png")
    keep = {p.name for p in val.iterdir()}
    gt = root / "val_gt.csv"
    gt.write_text(
        "filename,label\n"
        + "".join(f"{r['filename']},{r['label']}\n" for r in _rows(src / "val_gt.csv") if r["filename"] in keep)
    )
    return {"root": root, "train": train, "val": val, "gt": gt}


@pytest.fixture(scope="module")
def run(subset: dict[str, Path]) -> Path:
    """resnet18 trained for one epoch on the subset."""
    out = subset["root"] / "run_resnet18"
    rc = train_once(
        [
            "classify",
            "train",
            "--data",
            str(subset["train"]),
            "--val",
            str(subset["val"]),
            "--val-csv",
            str(subset["gt"]),
            "--out",
            str(out),
            "--model",
            "resnet18",
            "--epochs",
            "1",
            "--batch-size",
            "50",
            "--device",
            "cpu",
        ],
        subset["root"] / "cache",
    )
    assert rc == 0
    return out


# ------------------------------------------------------------------------------------------ the data itself
def test_val_gt_csv_agrees_with_file_names(dlcv_root: Path):
    val = dlcv_root / "p1_data" / "val_50"
    gt = dlcv_root / "p1_data" / "val_gt.csv"
    assert gt.read_text().splitlines()[0] == "filename,label"
    rows = _rows(gt)
    assert len(rows) == 2500
    names = [r["filename"] for r in rows]
    assert len(set(names)) == 2500
    assert set(names) == {p.name for p in val.iterdir()}
    for r in rows:
        m = re.fullmatch(r"(\d+)_(\d+)\.png", r["filename"])
        assert m and int(m.group(1)) == int(r["label"]), r
        assert 0 <= int(r["label"]) < 50 and 450 <= int(m.group(2)) <= 499
    assert np.bincount([int(r["label"]) for r in rows]).tolist() == [50] * 50
    # fcnlab's own reader cross-checks the CSV against the names and agrees
    files, labels = scan_folder(val, csv_path=gt, num_classes=50)
    truth = {r["filename"]: int(r["label"]) for r in rows}
    assert [truth[f.name] for f in files] == labels


def test_train_set_has_two_identical_pairs_with_different_labels(dlcv_root: Path):
    files, labels = scan_folder(dlcv_root / "p1_data" / "train_50", num_classes=50)
    assert len(files) == 20000
    groups = label_conflicts(file_digests(files), labels, files)
    assert sorted(tuple(f.name for f in g.files) for g in groups) == DUPLICATES
    assert [g.labels for g in groups] == [(10, 41), (33, 48)]
    line = conflict_warning(groups, "train_50")
    assert line is not None and "\n" not in line
    for pair in DUPLICATES:
        assert " = ".join(pair) in line


def test_duplicates_are_found_in_decoded_pixels_when_loading(dlcv_root: Path, tmp_path: Path):
    src = dlcv_root / "p1_data" / "train_50"
    folder = tmp_path / "train_50"
    folder.mkdir()
    for name in [n for pair in DUPLICATES for n in pair] + ["10_0.png", "41_0.png", "33_0.png", "48_0.png"]:
        shutil.copyfile(src / name, folder / name)
    data = load_image_set(folder, num_classes=50, cache="off")
    line = check_labelled_images(data.images, data.labels, data.files, folder.name)
    assert line is not None and line.startswith("4 identical images in train_50")
    assert "10_363.png = 41_87.png (labels 10, 41)" in line
    assert "33_161.png = 48_309.png (labels 33, 48)" in line
    assert "_0.png" not in line


# ------------------------------------------------------------------------------------------ CLI end to end
def test_checkpoints_load_with_weights_only(run: Path):
    for name in ("last.pt", "best.pt"):
        ckpt = torch.load(run / name, map_location="cpu", weights_only=True)
        assert ckpt["task"] == "classify" and ckpt["num_classes"] == 50 and ckpt["epoch"] == 1
        assert ckpt["model"]["fc.weight"].shape == (50, 512)


def test_eval_prints_the_seed_format(run: Path, subset: dict[str, Path], capsys):
    assert (
        main(["classify", "eval", "--ckpt", str(run), "--data", str(subset["val"]), "--csv", str(subset["gt"]), *CPU])
        == 0
    )
    lines = capsys.readouterr().out.splitlines()
    assert lines[:2] == ["===> prepare data loader ...", "Validation..."]
    m = re.fullmatch(r"Val Acc: (\d\.\d{6})", lines[2])
    assert m, lines[2]
    saved = json.loads((run / "eval" / "validation" / "eval.json").read_text())
    assert saved["images"] == 100 and float(m.group(1)) == pytest.approx(saved["val_acc"], abs=5e-7)


def test_predict_writes_the_course_csv_sorted_by_file_name(run: Path, subset: dict[str, Path], tmp_path: Path):
    out = tmp_path / "pred.csv"
    assert (
        main(["classify", "predict", "--ckpt", str(run), "--images", str(subset["val"]), "--out", str(out), *CPU]) == 0
    )
    lines = out.read_text().splitlines()
    assert lines[0] == "image_id,label"
    rows = [line.split(",") for line in lines[1:]]
    assert [r[0] for r in rows] == sorted(p.name for p in subset["val"].iterdir())  # "10_450" < "1_450"
    assert all(r[1].isdigit() and 0 <= int(r[1]) < 50 for r in rows)
    # the CSV scores what eval reports for the same checkpoint
    main(["classify", "eval", "--ckpt", str(run), "--data", str(subset["val"]), *CPU])
    truth = {r["filename"]: int(r["label"]) for r in _rows(subset["gt"])}
    acc = np.mean([truth[name] == int(label) for name, label in rows])
    assert acc == pytest.approx(json.loads((run / "eval" / "validation" / "eval.json").read_text())["val_acc"])


def test_tsne_writes_png_and_npz(run: Path, subset: dict[str, Path], tmp_path: Path):
    out = tmp_path / "tsne.png"
    assert main(["classify", "tsne", "--ckpt", str(run), "--data", str(subset["val"]), "--out", str(out), *CPU]) == 0
    with Image.open(out) as im:
        assert im.format == "PNG"
    with np.load(out.with_suffix(".npz")) as z:
        assert z["features"].shape == (100, 512) and z["embedding"].shape == (100, 2)
        assert np.bincount(z["labels"]).tolist() == [2] * 50


def test_seed_model_vgg16_bn_trains_prints_and_evaluates(subset: dict[str, Path], tmp_path: Path, capsys):
    """The seed's VGG16-BN (134M parameters, 1 GB checkpoints): printed structure, checkpoint, eval."""
    from torchvision.models import vgg16_bn

    out = tmp_path / "run_vgg"
    assert (
        main(
            [
                "classify",
                "train",
                "--data",
                str(subset["train"]),
                "--val",
                str(subset["val"]),
                "--out",
                str(out),
                "--model",
                "vgg16_bn",
                "--epochs",
                "1",
                "--batch-size",
                "32",
                "--limit",
                "32",
                "--device",
                "cpu",
            ]
        )
        == 0
    )
    reference = vgg16_bn(weights=None)
    reference.classifier[6] = torch.nn.Linear(4096, 50)
    assert (out / "model.txt").read_text() == f"{reference}\n"
    ckpt = torch.load(out / "last.pt", map_location="cpu", weights_only=True)
    assert sum(v.numel() for k, v in ckpt["model"].items() if k in dict(reference.named_parameters())) == 134_473_842
    capsys.readouterr()
    assert main(["classify", "eval", "--ckpt", str(out), "--data", str(subset["val"]), *CPU]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[:2] == ["===> prepare data loader ...", "Validation..."]
    assert re.fullmatch(r"Val Acc: \d\.\d{6}", lines[2])
