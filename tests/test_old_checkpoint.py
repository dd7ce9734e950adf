"""Checkpoints written by an earlier fcnlab still load, predict and resume.

``tests/data/old_classify.pt`` and ``tests/data/old_segment.pt`` were written by ``fcnlab ... train`` (one
epoch on synthetic data) before the package was reorganised by pipeline stage. Real models are hundreds of
megabytes, so the runs used the two tiny models below, registered under the same names here; everything
else (the checkpoint's keys, its config, the optimizer/scheduler/scaler/RNG states) is what training wrote.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch
from torch import nn

from fcnlab.models.registry import list_models, register_model, unregister_model

DATA = Path(__file__).parent / "data"

#: The top-level keys every training checkpoint had when the files were written.
KEYS = {
    "format",
    "version",
    "task",
    "model_name",
    "num_classes",
    "model",
    "optimizer",
    "scheduler",
    "scaler",
    "epoch",
    "step_in_epoch",
    "global_step",
    "best_metric",
    "best_epoch",
    "epoch_accum",
    "epoch_lr",
    "config",
    "rng",
    "metrics",
    "world_size",
}


def tiny_classifier(num_classes: int) -> nn.Module:
    """Conv-BN-ReLU, global pooling and a linear head (a few hundred parameters)."""
    return nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1),
        nn.BatchNorm2d(4),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(4, num_classes),
    )


class TinySegmenter(nn.Sequential):
    """Conv-BN-ReLU and a 1x1 classifier: per-pixel logits at the input size."""

    HEAD = ("3",)  # the score layer (new to fcnlab, as in the FCNs)


def tiny_segmenter(num_classes: int) -> nn.Module:
    return TinySegmenter(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.Conv2d(4, num_classes, 1))


def register_tiny_models() -> None:
    """Register the models the old checkpoints name (once per process)."""
    if "old_tiny_classifier" not in list_models():
        register_model("old_tiny_classifier", task="classify", backbone="resnet18")(tiny_classifier)
    if "old_tiny_segmenter" not in list_models():
        register_model("old_tiny_segmenter", task="segment", backbone="resnet18")(tiny_segmenter)


@pytest.fixture(autouse=True)
def tiny_old_models():
    """Registered for each test, removed after it (other tests list the registry); autouse, also in the modules
    that import it."""
    register_tiny_models()
    yield
    for name in ("old_tiny_classifier", "old_tiny_segmenter"):
        unregister_model(name)


@pytest.mark.parametrize("task", ["classify", "segment"])
def test_old_checkpoint_loads_with_every_key(task):
    from fcnlab.checkpoint import load_checkpoint
    from fcnlab.config import from_dict

    ckpt = load_checkpoint(DATA / f"old_{task}.pt")
    assert set(ckpt) == KEYS
    assert ckpt["task"] == task and ckpt["epoch"] == 1 and ckpt["step_in_epoch"] == 0
    cfg = from_dict(ckpt["config"], "old checkpoint")
    assert cfg.task == task and cfg.model == ckpt["model_name"] and cfg.num_classes == ckpt["num_classes"]
    # the file is also a plain weights-only load, without fcnlab
    assert torch.load(DATA / f"old_{task}.pt", weights_only=True)["format"] == "fcnlab-checkpoint"


def test_old_classifier_predicts(tmp_path):
    from fcnlab.api import predict_labels
    from fcnlab.data.synthetic import make_classification_data

    data = make_classification_data(tmp_path / "p1", num_classes=2, train_per_class=1, val_per_class=2)
    labels = predict_labels(DATA / "old_classify.pt", data / "val_50", device="cpu")
    assert labels.shape == (4,) and set(labels.tolist()) <= {0, 1}


def test_old_segmenter_predicts(tmp_path):
    from fcnlab.api import predict_masks
    from fcnlab.data.synthetic import make_segmentation_data

    data = make_segmentation_data(tmp_path / "p2", n_train=1, n_val=1, size=64)
    masks = predict_masks(DATA / "old_segment.pt", data / "validation", device="cpu")
    assert len(masks) == 1
    (mask,) = masks
    assert mask.shape == (64, 64) and int(mask.max()) < 7


@pytest.mark.parametrize("task", ["classify", "segment"])
def test_old_checkpoint_resumes(task, tmp_path):
    from fcnlab.api import train
    from fcnlab.checkpoint import load_checkpoint
    from fcnlab.data.synthetic import make_classification_data, make_segmentation_data

    if task == "classify":
        root = make_classification_data(tmp_path / "data", num_classes=2, train_per_class=4, val_per_class=2)
        folders = {"data": str(root / "train_50"), "val": str(root / "val_50"), "val_csv": None}
    else:
        root = make_segmentation_data(tmp_path / "data", n_train=2, n_val=1, size=64)
        folders = {"data": str(root / "train"), "val": str(root / "validation")}
    run = tmp_path / "run"
    run.mkdir()
    shutil.copy(DATA / f"old_{task}.pt", run / "last.pt")
    summary = train(None, run, resume=True, epochs=2, **folders)
    assert summary["epochs"] == 2
    assert load_checkpoint(run / "last.pt")["epoch"] == 2


@pytest.mark.parametrize(
    "version, says",
    [
        (2, "checkpoint format version 2 is newer than this fcnlab"),
        ("2", "checkpoint format version '2' is not a version number"),
    ],
)
def test_a_checkpoint_of_an_unknown_format_version_is_refused_in_one_line(tmp_path, capsys, version, says):
    from fcnlab.checkpoint import VERSION
    from fcnlab.cli.main import main
    from fcnlab.data.synthetic import make_segmentation_data

    ckpt = torch.load(DATA / "old_segment.pt", weights_only=True)
    ckpt["version"] = version
    torch.save(ckpt, tmp_path / "future.pt")
    data = make_segmentation_data(tmp_path / "p2", n_train=1, n_val=1, size=32)
    out = tmp_path / "masks"
    code = main(
        [
            "segment",
            "predict",
            "--ckpt",
            str(tmp_path / "future.pt"),
            "--images",
            str(data / "validation"),
            "--out",
            str(out),
            "--device",
            "cpu",
        ]
    )
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert code == 2 and len(err) == 1, err
    assert f"future.pt: {says}" in err[0]
    if version == 2:
        assert f"reads (version {VERSION}); upgrade fcnlab" in err[0]
    assert not out.exists()  # refused before anything was written
