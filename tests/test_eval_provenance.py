"""Numbers that say what they were measured on: eval folders with provenance, course-exact stdout, per-tile
CSV, compare without mixed deltas, stale t-SNE after a resume, env.json commands, train.log, weights export.

Two tiny runs are trained once per module: a P2 FCN-32s (1 epoch on four 64x64 tiles) and a P1 AirNet (1 epoch
at lr 1e-9 on 12 classes; the resume's epochs at lr 0.05 beat it, so best.pt changes).
"""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from fcnlab import __version__
from fcnlab.cli.main import main
from fcnlab.data.synthetic import make_classification_data, make_segmentation_data
from fcnlab.errors import ConfigError
from fcnlab.report.runs import load_run, load_runs
from fcnlab.tasks.metrics import course_miou, format_course_lines
from report_runs import make_run
from train_once import segment_train_argv, train_once

CPU = ("--device", "cpu", "--workers", "0")


@pytest.fixture(scope="module")
def p2(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("p2prov")
    data = make_segmentation_data(root / "data", n_train=4, n_val=2, size=64)
    run = root / "run"
    assert (
        train_once(
            segment_train_argv(data, run, epochs=1),
            root / "cache",
        )
        == 0
    )
    return {"root": root, "val": data / "validation", "run": run}


@pytest.fixture(scope="module")
def p1(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("p1prov")
    data = make_classification_data(root / "data", num_classes=12, train_per_class=4, val_per_class=1)
    run = root / "run"
    assert (
        train_once(
            [
                "classify",
                "train",
                "--data",
                str(data / "train_50"),
                "--val",
                str(data / "train_50"),
                "--out",
                str(run),
                "--model",
                "airnet",
                "--num-classes",
                "12",
                "--epochs",
                "1",
                "--batch-size",
                "8",
                "--lr",
                "1e-9",
                "--device",
                "cpu",
            ],
            root / "cache",
        )
        == 0
    )
    return {"root": root, "train": data / "train_50", "val": data / "val_50", "run": run}


def _copy_pairs(src: Path, dst: Path, stems: list[str]) -> Path:
    dst.mkdir(parents=True)
    for stem in stems:
        for f in src.glob(f"{stem}_*"):
            shutil.copy(f, dst / f.name)
    return dst


def _eval(folder: Path) -> dict:
    return json.loads((folder / "eval.json").read_text())


def test_segment_eval_stdout_is_exactly_the_course_lines(p2, capsys):
    assert main(["segment", "eval", "--ckpt", str(p2["run"]), "--data", str(p2["val"]), *CPU]) == 0
    out, err = capsys.readouterr()
    folder = p2["run"] / "eval" / "validation"
    saved = _eval(folder)
    assert out == format_course_lines(course_miou(np.array(saved["confusion_matrix"]))) + "\n"
    assert "pixel accuracy" in err and "mean class accuracy" in err and f"wrote {folder}" in err
    with open(folder / "per_tile.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["tile"] for r in rows] == ["0000_sat.jpg", "0001_sat.jpg"]
    assert all(int(r["pixels"]) == 64 * 64 for r in rows)
    # the tiles' pixel accuracies average (equal sizes) to the evaluation's
    assert np.mean([float(r["pixel_accuracy"]) for r in rows]) == pytest.approx(saved["val_acc"], abs=1e-6)
    assert 0 <= saved["mean_class_acc"] <= 1


def test_two_evaluations_on_different_folders_coexist(p2, tmp_path):
    run, val = p2["run"], p2["val"]
    small = _copy_pairs(val, tmp_path / "val10", ["0000"])
    other = _copy_pairs(val, tmp_path / "b" / "val10", ["0000", "0001"])  # same folder name, other data
    for data, tta in ((val, "none"), (small, "flip"), (other, "flip"), (small, "flip")):
        assert main(["segment", "eval", "--ckpt", str(run), "--data", str(data), "--tta", tta, *CPU]) == 0
    assert sorted(p.name for p in (run / "eval").iterdir()) == ["val10_tta-flip", "val10_tta-flip-2", "validation"]
    own, first, second = (_eval(run / "eval" / n) for n in ("validation", "val10_tta-flip", "val10_tta-flip-2"))
    assert (own["data"], own["count"], own["own_validation"], own["tta"]) == (str(val.resolve()), 2, True, "none")
    assert (first["data"], first["count"], first["own_validation"]) == (str(small.resolve()), 1, False)
    assert (second["data"], second["count"], second["tta"]) == (str(other.resolve()), 2, "flip")
    best = run / "best.pt"
    ck = first["checkpoint"]
    assert ck["path"] == str(best.resolve()) and ck["epoch"] == 1 and ck["weights"] == "raw"
    assert ck["size"] == best.stat().st_size and ck["mtime_ns"] == best.stat().st_mtime_ns
    assert first["fcnlab"] == __version__ and first["time"] and first["subset"] is False
    # the report shows the run's own validation by default, any other by name, and refuses an unknown one
    assert load_run(run).eval_name == "validation"
    shown = load_run(run, wanted="val10_tta-flip")
    assert shown.eval_name == "val10_tta-flip" and "(1 tiles), TTA flip" in shown.source
    assert {name for name, _, _ in shown.evaluations} == {"validation", "val10_tta-flip", "val10_tta-flip-2"}
    with pytest.raises(ConfigError, match="--eval tta-d4: no run has that evaluation"):
        load_runs([run], "tta-d4")
    commands = json.loads((run / "env.json").read_text())["commands"]
    assert [c["what"] for c in commands][:2] == ["train", "eval"]


def _with_eval(root: Path, name: str, data: str, count: int, miou: float, tta: str = "none") -> Path:
    run = make_run(root, name)
    folder = run / "eval" / "validation"
    folder.mkdir(parents=True)
    (folder / "eval.json").write_text(
        json.dumps(
            {
                "task": "segment",
                "data": data,
                "count": count,
                "unit": "tiles",
                "tta": tta,
                "scales": [1.0],
                "per_class_iou": [miou] * 6,
                "mean_iou": miou,
            }
        )
    )
    return run


def test_compare_of_runs_scored_on_different_data_prints_no_delta(tmp_path, capsys):
    a = _with_eval(tmp_path, "fcn32s", "/data/validation", 257, 0.60)
    b = _with_eval(tmp_path, "fcn8s", "/data/validation", 257, 0.65)
    c = _with_eval(tmp_path, "fcn8s_small", "/data/val10", 8, 0.70)
    d = _with_eval(tmp_path, "fcn8s_tta", "/data/validation", 257, 0.66, tta="d4")
    assert main(["compare", str(a), str(b)]) == 0
    same = capsys.readouterr().out
    assert "| mean IoU | 0.6000 | 0.6500 | +0.0500 |" in same and "not compared" not in same
    for other in (c, d):  # other data, or the same data with other options
        assert main(["compare", str(a), str(other)]) == 0
        text = capsys.readouterr().out
        assert "Δ" not in text and "+0.0" not in text and "not compared side by side" in text
        assert "| mean IoU | 0.6000 |" in text
    assert "on /data/val10 (8 tiles), TTA none" in main_out(["compare", str(a), str(c)], capsys)
    html = tmp_path / "r.html"
    assert main(["report", str(a), str(c), "--out", str(html), "--no-checkpoints"]) == 0
    page = html.read_text()
    assert "not compared side by side" in page and "Δ fcn8s_small" not in page


def main_out(argv: list[str], capsys) -> str:
    assert main(argv) == 0
    return capsys.readouterr().out


def test_resumed_runs_old_tsne_and_eval_are_flagged_and_refreshed(p1, capsys):
    run = p1["run"]
    assert (
        main(["classify", "tsne", "--ckpt", str(run), "--data", str(p1["val"]), "--out", str(run / "tsne.png"), *CPU])
        == 0
    )
    assert main(["classify", "eval", "--ckpt", str(run), "--data", str(p1["train"]), *CPU]) == 0
    lines = capsys.readouterr().out.splitlines()
    saved = _eval(run / "eval" / "validation")
    assert lines[lines.index(f"Val Acc: {saved['val_acc']:.6f}") + 1] == f"Top-5 Acc: {saved['top5_acc']:.6f}"
    assert saved["top5_acc"] >= saved["val_acc"] and saved["count"] == 48
    info = load_run(run)
    assert info.tsne_stale == "" and info.eval_name == "validation" and not info.measured.stale
    assert (
        # a higher lr than the fixture's, so the new epochs beat epoch 1 (changing it needs --change-settings)
        train_once(
            ["classify", "train", "--resume", str(run), "--epochs", "3", "--lr", "0.05", "--change-settings"],
            p1["root"] / "cache",
        )
        == 0
    )
    best = torch.load(run / "best.pt", map_location="cpu", weights_only=True)
    assert best["epoch"] > 1  # training at lr 0.05 beat the untrained epoch 1: best.pt changed
    info = load_run(run)
    assert "made from an older best.pt (epoch 1)" in info.tsne_stale
    assert "STALE" in info.source and any("is stale" in n for n in info.notes)
    html = p1["root"] / "report.html"
    assert main(["report", str(run), "--out", str(html), "--no-checkpoints"]) == 0
    assert "STALE t-SNE" in html.read_text()
    # env.json keeps every command, train.log the console of both trainings
    commands = json.loads((run / "env.json").read_text())["commands"]
    assert [c["what"] for c in commands] == ["train", "eval", "resume"]
    assert "--resume" in commands[-1]["command"] and commands[-1]["data"]["val"]["count"] == 48
    log = (run / "train.log").read_text()
    assert log.count("=== train:") == 1 and log.count("=== resume:") == 1 and "epoch 3/3" in log
    # --refresh re-runs both from the current best.pt
    assert main(["report", str(run), "--out", str(html), "--no-checkpoints", "--refresh"]) == 0
    info = load_run(run)
    assert info.tsne_stale == "" and not info.measured.stale
    assert json.loads((run / "eval" / "validation" / "eval.json").read_text())["checkpoint"]["epoch"] == best["epoch"]


def test_export_weights_is_small_and_loads_everywhere(p1, tmp_path, capsys):
    out = tmp_path / "weights.pt"
    assert main(["export", "--ckpt", str(p1["run"]), "--format", "weights", "--out", str(out)]) == 0
    w = torch.load(out, map_location="cpu", weights_only=True)
    assert w["optimizer"] is None and "rng" not in w and "history" not in w
    assert set(w["model"]) == set(torch.load(p1["run"] / "best.pt", weights_only=True)["model"])
    assert out.stat().st_size < (p1["run"] / "best.pt").stat().st_size
    for name, ckpt in (("from_run", p1["run"]), ("from_weights", out)):  # the same accuracy from both
        assert (
            main(
                ["classify", "eval", "--ckpt", str(ckpt), "--data", str(p1["val"]), "--out", str(tmp_path / name), *CPU]
            )
            == 0
        )
    run, weights = _eval(tmp_path / "from_run"), _eval(tmp_path / "from_weights")
    assert weights["val_acc"] == run["val_acc"] and weights["confusion_matrix"] == run["confusion_matrix"]


def test_predict_scores_and_overlays_in_their_own_folder(p1, p2, tmp_path, capsys):
    out = tmp_path / "pred.csv"
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
                "--scores",
                *CPU,
            ]
        )
        == 0
    )
    with open(out, newline="") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == ["image_id", "label", "confidence", "top5"]
    for r in rows:
        top = [int(c) for c in r["top5"].split()]
        assert top[0] == int(r["label"]) and len(top) == 5 and 1 / 12 <= float(r["confidence"]) <= 1
    masks = tmp_path / "masks"
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
                str(masks),
                "--overlay",
                *CPU,
            ]
        )
        == 0
    )
    assert sorted(p.name for p in masks.iterdir()) == ["0000_mask.png", "0001_mask.png", "overlays"]
    assert sorted(p.name for p in (masks / "overlays").iterdir()) == [
        "0000_overlay.jpg",
        "0001_overlay.jpg",
        "legend.png",
    ]
    capsys.readouterr()
    assert main(["miou", "--labels", str(p2["val"]), "--pred", str(masks)]) == 0
    assert "ignored" not in capsys.readouterr().err


def test_p1_report_shows_the_evaluation_it_has_and_its_per_class_table(tmp_path):
    """A P1 run evaluated only with flip TTA on all its validation images (training validated 4 of them): the
    report shows that evaluation, with its data and count, and its per-class accuracy."""
    run = make_run(tmp_path, "p1", task="classify", accs=(0.5, 0.9))
    (run / "env.json").write_text(json.dumps({"data": {"val": {"path": "/data/val_50", "count": 4}}}))
    (run / "config.yaml").write_text("task: classify\nmodel: vgg16_bn\nval: /data/val_50\nval_limit: 4\n")
    folder = run / "eval" / "validation_tta-flip"
    folder.mkdir(parents=True)
    (run / "best.pt").write_bytes(b"x")  # another file than the one scored, but of the best epoch: not stale
    per_class = [0.25 * (i % 4) for i in range(50)]
    (folder / "eval.json").write_text(
        json.dumps(
            {
                "task": "classify",
                "data": "/data/val_50",
                "count": 2500,
                "tta": "flip",
                "val_acc": 0.7636,
                "per_class_acc": per_class,
                "checkpoint": {"name": "best.pt", "epoch": 2, "weights": "raw"},
            }
        )
    )
    info = load_run(run)
    assert info.eval_name == "validation_tta-flip" and info.val_acc == 0.7636 and info.per_class_acc == per_class
    assert info.source == (
        "eval/validation_tta-flip (best.pt, epoch 2, raw weights) on /data/val_50 (2500 images), TTA flip"
    )
    metrics = load_run(run, wanted="metrics.csv")
    assert metrics.val_acc == 0.9 and "(4 images, --val-limit 4)" in metrics.source
    html = tmp_path / "r.html"
    assert main(["report", str(run), "--out", str(html), "--no-checkpoints"]) == 0
    page = html.read_text()
    assert "Val Acc: 0.763600" in page and "2500 images" in page and "no per-class accuracy" not in page


def test_snapshots_after_the_end_of_metrics_are_flagged(tmp_path):
    """A run resumed from an earlier checkpoint keeps the mask snapshots of epochs it has not trained again."""
    run = make_run(tmp_path, "fcn8s", epochs_ious=[[0.5] * 6, [0.6] * 6])  # metrics.csv ends at epoch 2
    info = load_run(run)  # make_run drew snapshots of epochs 1 and 3
    assert sorted(info.snapshots) == [1, 3]
    assert any("mask snapshots of epoch 3 are stale" in n for n in info.notes)
    assert not any("stale" in n for n in load_run(make_run(tmp_path, "full")).notes)  # 3 epochs: none
