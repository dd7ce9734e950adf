"""Distributed training for real: ``torchrun --nproc_per_node=2 -m fcnlab ...`` on the CPU (gloo) with a tiny
real subset. Only rank 0 writes and prints; the validation metrics it logs (confusion matrix all-reduced
over the two shards) equal a single-process evaluation of the checkpoint it saved."""

from __future__ import annotations

import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from PIL import Image

from fcnlab.checkpoint import load_checkpoint, model_from_checkpoint
from fcnlab.cli.main import main
from fcnlab.config import from_dict
from fcnlab.tasks import make_task

pytestmark = pytest.mark.realdata


def torchrun(args: list[str], tmp_path: Path) -> subprocess.CompletedProcess:
    """Two CPU processes on this machine (torchrun's standalone rendezvous picks a free port)."""
    env = {**os.environ, "FCNLAB_CACHE": str(tmp_path / "cache"), "OMP_NUM_THREADS": "1"}
    result = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m", "fcnlab", *args],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result


def single_process_metrics(run: Path) -> dict[str, float]:
    """Evaluate the saved checkpoint in this one process on the whole validation set."""
    ckpt = load_checkpoint(run / "last.pt")
    cfg = from_dict(ckpt["config"])
    task = make_task(cfg)
    metrics, _ = task.evaluate(model_from_checkpoint(ckpt), task.load_val(), torch.device("cpu"))
    return metrics


def assert_equal_metrics(logged: dict[str, float], single: dict[str, float]) -> None:
    for key, value in single.items():
        if key == "val_loss":  # float sums in another order: equal to rounding
            assert logged[key] == pytest.approx(value, rel=1e-6, abs=1e-9)
        elif math.isnan(value):
            assert math.isnan(logged[key]), key
        else:  # from the all-reduced integer confusion matrix: exactly equal
            assert logged[key] == value, key


def check_rank0_only(result: subprocess.CompletedProcess, run: Path) -> None:
    assert result.stdout.count("epoch 1/1:") == 1 and result.stdout.count("done: best") == 1
    assert result.stdout.count("epoch 2/2:") in (0, 1)
    ckpt = load_checkpoint(run / "last.pt")
    assert ckpt["world_size"] == 2 and len(ckpt["rng_ranks"]) == 2  # every rank's RNG, for exact resume
    assert not torch.equal(ckpt["rng_ranks"][0]["augment"], ckpt["rng_ranks"][1]["augment"])
    assert not list(run.glob(".*")), "temporary files left behind"


@pytest.mark.parametrize(
    "extra",
    [
        [],
        [
            "--ema",
            "true",
            "--ema-decay",
            "0.5",
            "--augment-policy",
            "trivialaugment",
            "--cutmix",
            "1.0",
            "--lr-base-batch",
            "4",
        ],
    ],
    ids=["plain", "ema_augment"],
)
def test_classify_ddp_metrics_equal_single_process_eval(dlcv_root, tmp_path, capsys, extra):
    """With ``ema`` the logged metrics are the average's (BN statistics from rank 0), which inference loads."""
    data = tmp_path / "p1"
    for split, src, indices in (("train", "train_50", range(5)), ("val", "val_50", range(450, 453))):
        (data / split).mkdir(parents=True)
        for label in range(4):
            for i in indices:
                if split == "val" and label == 3 and i == 452:
                    continue  # 11 validation images: the two ranks' shards differ in size
                shutil.copy(dlcv_root / "p1_data" / src / f"{label}_{i}.png", data / split)
    run = tmp_path / "run"
    result = torchrun(
        [
            "classify",
            "train",
            "--data",
            str(data / "train"),
            "--val",
            str(data / "val"),
            "--out",
            str(run),
            "--model",
            "resnet18",
            "--num-classes",
            "4",
            "--epochs",
            "1",
            "--batch-size",
            "4",
            "--lr",
            "0.01",
            "--device",
            "cpu",
            *extra,
        ],
        tmp_path,
    )
    check_rank0_only(result, run)
    if "--lr-base-batch" in extra:  # lr 0.01 per 4 images; two processes of 4 images: 0.02
        assert "lr 0.02 (0.01 per 4 images, linear scaling to a batch of 8)" in result.stdout
    logged = load_checkpoint(run / "last.pt")["metrics"]
    assert_equal_metrics(logged, single_process_metrics(run))
    row = (run / "metrics.csv").read_text().splitlines()[1].split(",")
    assert float(row[5]) == pytest.approx(logged["val_acc"], abs=5e-7)
    assert (
        main(["classify", "eval", "--ckpt", str(run), "--data", str(data / "val"), "--device", "cpu", "--workers", "0"])
        == 0
    )
    assert f"Val Acc: {logged['val_acc']:.6f}" in capsys.readouterr().out


def test_segment_ddp_metrics_equal_single_process_eval(dlcv_root, tmp_path):
    data = tmp_path / "p2"
    for split, src, stems in (
        ("train", "train", ("0000", "0001", "0002", "0003")),
        ("val", "validation", ("0000", "0001", "0177")),
    ):
        (data / split).mkdir(parents=True)
        for stem in stems:  # 64x64 crops; validation 0177 holds the stray red (unknown) pixels
            box = (0, 0, 64, 64) if stem != "0177" else (192, 192, 256, 256)
            Image.open(dlcv_root / "p2_data" / src / f"{stem}_sat.jpg").crop(box).save(
                data / split / f"{stem}_sat.jpg", quality=95
            )
            Image.open(dlcv_root / "p2_data" / src / f"{stem}_mask.png").convert("RGB").crop(box).save(
                data / split / f"{stem}_mask.png"
            )
    run = tmp_path / "run"
    result = torchrun(
        [
            "segment",
            "train",
            "--data",
            str(data / "train"),
            "--val",
            str(data / "val"),
            "--out",
            str(run),
            "--model",
            "fcn8s_resnet34",
            "--image-size",
            "64",
            "--epochs",
            "1",
            "--batch-size",
            "2",
            "--device",
            "cpu",
        ],
        tmp_path,
    )
    check_rank0_only(result, run)
    logged = load_checkpoint(run / "last.pt")["metrics"]
    single = single_process_metrics(run)
    assert {"val_miou", "iou_0", "iou_5"} <= set(single)
    assert_equal_metrics(logged, single)
