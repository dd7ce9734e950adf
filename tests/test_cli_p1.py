"""End-to-end ``fcnlab classify`` on a tiny synthetic P1 set: train, eval, predict, tsne via ``cli.main``.

One resnet18 run (2 epochs, 32 images) is trained once per module and shared by the tests.
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
from fcnlab.data.synthetic import make_classification_data
from train_once import train_once

#: trains and evaluates through the CLI: the full suite's, not the fast lane's (-m "not slow and not realdata")
pytestmark = pytest.mark.slow

NUM_CLASSES = 4

#: inference options: CPU, decoding in the main process (a few images)
CPU = ("--device", "cpu", "--workers", "0")


@pytest.fixture(scope="module")
def p1(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Synthetic data and a trained run folder."""
    root = tmp_path_factory.mktemp("p1")
    data = make_classification_data(root / "data", num_classes=NUM_CLASSES, train_per_class=8, val_per_class=3)
    run = root / "run"
    rc = train_once(
        [
            "classify",
            "train",
            "--data",
            str(data / "train_50"),
            "--val",
            str(data / "val_50"),
            "--val-csv",
            str(data / "val_gt.csv"),
            "--out",
            str(run),
            "--model",
            "resnet18",
            "--num-classes",
            str(NUM_CLASSES),
            "--epochs",
            "2",
            "--batch-size",
            "8",
            "--device",
            "cpu",
        ],
        root / "cache",
    )
    assert rc == 0
    return {"root": root, "train": data / "train_50", "val": data / "val_50", "gt": data / "val_gt.csv", "run": run}


def _csv_rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_train_writes_the_run_folder(p1):
    run = p1["run"]
    for name in ("config.yaml", "model.txt", "env.json", "metrics.csv", "timing.csv", "last.pt", "best.pt"):
        assert (run / name).is_file(), name
    assert (run / "model.txt").read_text().startswith("ResNet(")
    rows = _csv_rows(run / "metrics.csv")
    assert [int(r["epoch"]) for r in rows] == [1, 2]
    assert all(0.0 <= float(r["val_acc"]) <= 1.0 for r in rows)
    assert [int(r["epoch"]) for r in _csv_rows(run / "timing.csv")] == [1, 2]
    env = json.loads((run / "env.json").read_text())
    assert env["torch"] == torch.__version__


def test_checkpoints_load_with_weights_only(p1):
    last = torch.load(p1["run"] / "last.pt", map_location="cpu", weights_only=True)
    best = torch.load(p1["run"] / "best.pt", map_location="cpu", weights_only=True)
    assert last["epoch"] == 2 and last["task"] == "classify"
    assert isinstance(last["config"], dict) and last["config"]["model"] == "resnet18"
    assert last["model"]["fc.weight"].shape == (NUM_CLASSES, 512)
    assert 1 <= best["epoch"] <= 2 and best["epoch"] == last["best_epoch"]


def test_eval_prints_the_seed_format(p1, capsys):
    assert (
        main(["classify", "eval", "--ckpt", str(p1["run"]), "--data", str(p1["val"]), "--csv", str(p1["gt"]), *CPU])
        == 0
    )
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "===> prepare data loader ..."
    assert lines[1] == "Validation..."
    m = re.fullmatch(r"Val Acc: (\d\.\d{6})", lines[2])
    assert m, lines[2]
    saved = json.loads((p1["run"] / "eval" / "validation" / "eval.json").read_text())
    assert float(m.group(1)) == pytest.approx(saved["val_acc"], abs=5e-7)
    assert saved["images"] == NUM_CLASSES * 3
    assert (p1["run"] / "eval" / "validation" / "confusion_matrix.png").is_file()


def test_predict_agrees_with_eval(p1, tmp_path):
    """The CSV of ``predict`` scores exactly the accuracy that ``eval`` printed (same checkpoint, inputs)."""
    out = tmp_path / "pred.csv"
    assert (
        main(
            [
                "classify",
                "eval",
                "--ckpt",
                str(p1["run"]),
                "--data",
                str(p1["val"]),
                "--device",
                "cpu",
                "--workers",
                "0",
            ]
        )
        == 0
    )
    assert (
        main(["classify", "predict", "--ckpt", str(p1["run"]), "--images", str(p1["val"]), "--out", str(out), *CPU])
        == 0
    )
    truth = {r["filename"]: int(r["label"]) for r in _csv_rows(p1["gt"])}
    rows = _csv_rows(out)
    assert sorted(truth) == [r["image_id"] for r in rows]
    acc = np.mean([truth[r["image_id"]] == int(r["label"]) for r in rows])
    assert acc == pytest.approx(json.loads((p1["run"] / "eval" / "validation" / "eval.json").read_text())["val_acc"])


def test_predict_csv_is_sorted_by_file_name_and_needs_no_labels(p1, tmp_path):
    images = tmp_path / "images"
    images.mkdir()
    sources = sorted(p1["val"].glob("*.png"))
    names = ["b.png", "10_3.png", "2_1.png", "a_img.png", "C.png"]
    for src, name in zip(sources, names, strict=False):
        shutil.copyfile(src, images / name)
    out = tmp_path / "out" / "pred.csv"
    assert (
        main(
            [
                "classify",
                "predict",
                "--ckpt",
                str(p1["run"] / "best.pt"),
                "--images",
                str(images),
                "--out",
                str(out),
                *CPU,
            ]
        )
        == 0
    )
    text = out.read_text()
    assert text.splitlines()[0] == "image_id,label"
    rows = _csv_rows(out)
    assert [r["image_id"] for r in rows] == sorted(names)
    assert all(0 <= int(r["label"]) < NUM_CLASSES for r in rows)


def test_predict_refuses_a_folder_as_output(p1, capsys):
    assert (
        main(
            [
                "classify",
                "predict",
                "--ckpt",
                str(p1["run"]),
                "--images",
                str(p1["val"]),
                "--out",
                str(p1["val"]),
                "--device",
                "cpu",
            ]
        )
        == 2
    )
    assert "--out" in capsys.readouterr().err
    assert not list(p1["val"].glob("*.csv"))


def test_eval_rejects_a_csv_that_disagrees_with_file_names(p1, tmp_path, capsys):
    rows = _csv_rows(p1["gt"])
    bad = tmp_path / "bad_gt.csv"
    wrong = (int(rows[0]["label"]) + 1) % NUM_CLASSES
    bad.write_text(
        "filename,label\n"
        + f"{rows[0]['filename']},{wrong}\n"
        + "".join(f"{r['filename']},{r['label']}\n" for r in rows[1:])
    )
    assert main(["classify", "eval", "--ckpt", str(p1["run"]), "--data", str(p1["val"]), "--csv", str(bad), *CPU]) == 2
    err = capsys.readouterr().err
    assert err.startswith("fcnlab: error: ") and rows[0]["filename"] in err
    assert len(err.strip().splitlines()) == 1


def test_tsne_writes_png_and_npz(p1, tmp_path):
    out = tmp_path / "tsne.png"
    assert main(["classify", "tsne", "--ckpt", str(p1["run"]), "--data", str(p1["val"]), "--out", str(out), *CPU]) == 0
    with Image.open(out) as im:
        assert im.format == "PNG" and im.width > 100
    with np.load(out.with_suffix(".npz")) as z:
        assert z["features"].shape == (NUM_CLASSES * 3, 512)
        assert z["embedding"].shape == (NUM_CLASSES * 3, 2) and np.isfinite(z["embedding"]).all()
        assert sorted(z["labels"].tolist()) == sorted(list(range(NUM_CLASSES)) * 3)
