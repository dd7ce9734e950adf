"""The P2 training options (loss, rare-class sampling, poly schedule) and test-time augmentation through the
command line and the Python API, on tiny synthetic data."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from fcnlab import api
from fcnlab.cli.main import main
from fcnlab.data.synthetic import make_classification_data, make_segmentation_data
from train_once import segment_train_argv, train_once

#: trains and evaluates through the CLI: the full suite's, not the fast lane's (-m "not slow and not realdata")
pytestmark = pytest.mark.slow

CPU = ("--device", "cpu", "--workers", "0")


@pytest.fixture(scope="module")
def p2(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """One tiny run with every new training option on: ce+lovasz, rare sampling, poly schedule."""
    root = tmp_path_factory.mktemp("p2tta")
    data = make_segmentation_data(root / "data", n_train=4, n_val=2, size=64)
    run = root / "run"
    rc = train_once(
        segment_train_argv(
            data,
            run,
            "--loss",
            "ce+lovasz",
            "--sampling",
            "rare",
            "--rare-classes",
            "2,4",
            "--repeat-threshold",
            "1.0",
            "--scheduler",
            "poly",
            "--warmup-epochs",
            "0",
        ),
        root / "cache",
    )
    assert rc == 0
    return {"root": root, "val": data / "validation", "run": run}


def test_training_options_are_saved_and_the_run_learns(p2):
    cfg = yaml.safe_load((p2["run"] / "config.yaml").read_text())
    assert cfg["loss"] == "ce+lovasz" and cfg["sampling"] == "rare" and cfg["rare_classes"] == [2, 4]
    assert cfg["scheduler"] == "poly"
    with open(p2["run"] / "metrics.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 2
    assert all(np.isfinite(float(r["train_loss"])) for r in rows)
    # poly: epoch 2 starts at (1 - 1/2) ** 0.9 of the peak (2 steps per epoch, no warm-up)
    assert float(rows[1]["lr"]) == pytest.approx(0.01 * 0.5**0.9, rel=1e-4)


@pytest.mark.parametrize(
    "tta,scales,folder",
    [
        ("none", None, "eval/validation"),
        ("flip", None, "eval/validation_tta-flip"),
        ("d4", "0.75,1", "eval/validation_tta-d4_scales-0.75-1"),
    ],
)
def test_segment_eval_with_tta(p2, tta, scales, folder, capsys):
    argv = ["segment", "eval", "--ckpt", str(p2["run"]), "--data", str(p2["val"]), "--tta", tta, *CPU]
    if scales:
        argv += ["--scales", scales]
    assert main(argv) == 0
    assert "mean_iou:" in capsys.readouterr().out
    result = json.loads((p2["run"] / folder / "eval.json").read_text())
    assert result["tta"] == tta and len(result["per_class_iou"]) == 6
    assert np.asarray(result["confusion_matrix"]).sum() == 2 * 64 * 64


def test_segment_predict_with_d4_matches_api(p2):
    out = p2["root"] / "pred_d4"
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
                str(out),
                "--tta",
                "d4",
                *CPU,
            ]
        )
        == 0
    )
    from fcnlab.data.mask_codec import read_mask

    masks = api.predict_masks(p2["run"], p2["val"], device="cpu", tta="d4")
    written = sorted(out.glob("*_mask.png"))
    assert len(written) == len(masks) == 2
    for f, m in zip(written, masks, strict=True):
        np.testing.assert_array_equal(read_mask(f)[0], m)
    pred = api.load_checkpoint(p2["run"], "cpu", tta="d4")
    assert pred.tta == "d4"
    np.testing.assert_array_equal(api.predict_masks(pred, p2["val"])[0], masks[0])
    plain = api.predict_masks(pred, p2["val"], tta="none")[0]  # the same weights without TTA
    assert plain.shape == masks[0].shape


def test_bad_tta_options_are_one_line_errors(p2, capsys):
    assert main(["segment", "eval", "--ckpt", str(p2["run"]), "--data", str(p2["val"]), "--scales", "0,1", *CPU]) == 2
    assert "--scales" in capsys.readouterr().err
    with pytest.raises(SystemExit):  # argparse: not a choice
        main(["classify", "eval", "--ckpt", str(p2["run"]), "--data", str(p2["val"]), "--tta", "d4"])


@pytest.fixture(scope="module")
def p1(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("p1tta")
    data = make_classification_data(root / "data", num_classes=3, train_per_class=6, val_per_class=2)
    run = root / "run"
    rc = train_once(
        [
            "classify",
            "train",
            "--data",
            str(data / "train_50"),
            "--val",
            str(data / "val_50"),
            "--out",
            str(run),
            "--model",
            "resnet18",
            "--num-classes",
            "3",
            "--epochs",
            "1",
            "--batch-size",
            "6",
            "--device",
            "cpu",
        ],
        root / "cache",
    )
    assert rc == 0
    return {"root": root, "val": data / "val_50", "run": run}


def test_classify_eval_predict_tsne_with_flip(p1, capsys):
    assert main(["classify", "eval", "--ckpt", str(p1["run"]), "--data", str(p1["val"]), "--tta", "flip", *CPU]) == 0
    assert "Val Acc:" in capsys.readouterr().out
    assert json.loads((p1["run"] / "eval" / "validation_tta-flip" / "eval.json").read_text())["tta"] == "flip"
    out = p1["root"] / "pred.csv"
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
                str(out),
                "--tta",
                "flip",
                *CPU,
            ]
        )
        == 0
    )
    with open(out, newline="") as f:
        cli_labels = [int(r["label"]) for r in csv.DictReader(f)]
    labels = api.predict_labels(p1["run"], p1["val"], device="cpu", tta="flip")
    assert cli_labels == labels.tolist()
    png = p1["root"] / "tsne.png"
    assert (
        main(
            [
                "classify",
                "tsne",
                "--ckpt",
                str(p1["run"]),
                "--data",
                str(p1["val"]),
                "--out",
                str(png),
                "--tta",
                "flip",
                *CPU,
            ]
        )
        == 0
    )
    assert png.is_file()


def test_api_flip_tta_is_the_mean_of_both_views(p1):
    import torch

    pred = api.load_checkpoint(p1["run"], "cpu")
    flip = api.load_checkpoint(p1["run"], "cpu", tta="flip")
    x = torch.randint(0, 256, (2, 3, 32, 32), dtype=torch.uint8)
    torch.testing.assert_close(flip.logits(x), (pred.logits(x) + pred.logits(x.flip(-1))) / 2, rtol=1e-5, atol=1e-5)
    from fcnlab.errors import ConfigError

    with pytest.raises(ConfigError, match="--tta"):
        api.load_checkpoint(p1["run"], "cpu", tta="d4")
