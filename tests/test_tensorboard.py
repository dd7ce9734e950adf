"""TensorBoard hook: train/val scalars, per-class IoU and mask snapshots land in event files."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from fcnlab.errors import ConfigError
from fcnlab.training.tensorboard import TensorBoardHook, iou_tag

pytest.importorskip("tensorboard", reason="tensorboard is an optional dependency (pip install 'fcnlab[tensorboard]')")


def _events(log_dir: Path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(log_dir), size_guidance={"scalars": 0, "images": 0, "tensors": 0})
    acc.Reload()
    return acc


def _scalars(acc, tag: str) -> dict[int, float]:
    return {e.step: e.value for e in acc.Scalars(tag)}


ROW = {
    "epoch": 2,
    "lr": 0.01,
    "train_loss": 0.9,
    "train_acc": 0.7,
    "val_loss": 1.1,
    "val_acc": 0.65,
    "val_miou": 0.42,
    "iou_0": 0.5,
    "iou_1": 0.8,
    "iou_2": 0.2,
    "iou_3": 0.6,
    "iou_4": math.nan,
    "iou_5": 0.4,
}


def test_hook_logs_scalars_iou_snapshots_and_config(tmp_path: Path) -> None:
    (tmp_path / "config.yaml").write_text("task: segment\nmodel: fcn8s_resnet34\n")
    (tmp_path / "snapshots").mkdir()
    Image.new("RGB", (30, 20), (255, 255, 0)).save(tmp_path / "snapshots" / "epoch_002.png")
    hook = TensorBoardHook(tmp_path)
    hook(2, None, ROW, None)
    hook(3, None, {**ROW, "epoch": 3, "train_loss": 0.8}, None)
    hook.close()
    acc = _events(tmp_path / "tensorboard")
    tags = acc.Tags()
    assert set(tags["scalars"]) == {
        "loss/train",
        "loss/val",
        "accuracy/train",
        "accuracy/val",
        "miou/val",
        "lr",
        "iou/0_urban",
        "iou/1_agriculture",
        "iou/2_rangeland",
        "iou/3_forest",
        "iou/5_barren",
    }  # iou_4 is nan (class absent): left out
    assert _scalars(acc, "loss/train") == pytest.approx({2: 0.9, 3: 0.8})
    assert _scalars(acc, "iou/2_rangeland") == pytest.approx({2: 0.2, 3: 0.2})
    images = acc.Images("snapshots/masks")
    assert [(e.step, e.width, e.height) for e in images] == [(2, 30, 20)]  # only the snapshot epoch
    assert "config" in " ".join(tags["tensors"])


def test_resumed_run_replaces_events_after_the_checkpoint(tmp_path: Path) -> None:
    first = TensorBoardHook(tmp_path)
    for epoch in (1, 2, 3):
        first(epoch, None, {"train_loss": float(epoch)}, None)
    first.close()
    resumed = TensorBoardHook(tmp_path)  # resumed from the checkpoint of epoch 1
    resumed(2, None, {"train_loss": 20.0}, None)
    resumed.close()
    assert _scalars(_events(tmp_path / "tensorboard"), "loss/train") == {1: 1.0, 2: 20.0}


def test_missing_tensorboard_is_a_config_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)
    with pytest.raises(ConfigError, match="option tensorboard: the tensorboard package is not installed"):
        TensorBoardHook(tmp_path)
    assert not (tmp_path / "tensorboard").exists()


def test_iou_tag() -> None:
    assert iou_tag("iou_0") == "iou/0_urban" and iou_tag("iou_6") == "iou/6_unknown"


def test_one_epoch_training_run_writes_event_files(tmp_path: Path) -> None:
    from fcnlab.config import from_dict
    from fcnlab.data.synthetic import make_segmentation_data
    from fcnlab.training.fit import fit

    data = make_segmentation_data(tmp_path / "data", n_train=2, n_val=1, size=32)
    cfg = from_dict(
        {
            "task": "segment",
            "model": "fcn32s_resnet34",
            "data": str(data / "train"),
            "val": str(data / "validation"),
            "epochs": 1,
            "batch_size": 2,
            "image_size": 32,
            "snapshot_epochs": [1],
            "snapshot_tiles": 1,
            "pretrained": False,
            "cache": "memory",
            "tensorboard": True,
            "device": "cpu",
        }
    )
    fit(cfg, tmp_path / "run")
    assert list((tmp_path / "run" / "tensorboard").glob("events.out.tfevents.*"))
    acc = _events(tmp_path / "run" / "tensorboard")
    metrics = (tmp_path / "run" / "metrics.csv").read_text().splitlines()
    row = dict(zip(metrics[0].split(","), metrics[1].split(","), strict=True))
    assert _scalars(acc, "loss/train") == pytest.approx({1: float(row["train_loss"])}, abs=1e-5)
    assert _scalars(acc, "miou/val") == pytest.approx({1: float(row["val_miou"])}, abs=1e-5)
    assert any(t.startswith("iou/") for t in acc.Tags()["scalars"])
    (image,) = acc.Images("snapshots/masks")
    snap = np.asarray(Image.open(tmp_path / "run" / "snapshots" / "epoch_001.png").convert("RGB"))
    assert (image.step, image.height, image.width) == (1, snap.shape[0], snap.shape[1])
