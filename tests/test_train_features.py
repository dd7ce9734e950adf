"""Training with the P1 features on (batch policies, random erasing, CutMix/MixUp, Nesterov) and the weights'
moving average (both tasks): what the run folder holds, and that best.pt holds the weights that scored."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
import torch

from fcnlab.checkpoint import inference_weights, load_checkpoint, model_from_checkpoint
from fcnlab.config import from_dict
from fcnlab.data.synthetic import make_classification_data, make_segmentation_data
from fcnlab.tasks import make_task
from train_once import segment_train_argv, train_once

FEATURES = [
    "--augment-policy",
    "trivialaugment",
    "--random-erasing",
    "0.5",
    "--cutmix",
    "1.0",
    "--mixup",
    "0.4",
    "--mix-prob",
    "0.8",
    "--label-smoothing",
    "0.1",
    "--nesterov",
    "true",
    "--ema",
    "true",
    "--ema-decay",
    "0.9",
]


@pytest.fixture(scope="module")
def p1_run(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("features")
    data = make_classification_data(root / "p1", num_classes=4, train_per_class=4, val_per_class=2)
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
            "4",
            "--batch-size",
            "4",
            "--lr",
            "0.01",
            "--epochs",
            "2",
            "--device",
            "cpu",
            "--log-every",
            "1000",
            *FEATURES,
        ],
        root / "cache",
    )
    assert rc == 0
    return run


def _rows(run: Path) -> list[dict[str, str]]:
    with open(run / "metrics.csv", newline="") as f:
        return list(csv.DictReader(f))


def test_run_with_every_p1_feature_keeps_raw_and_averaged_weights(p1_run):
    rows = _rows(p1_run)
    assert [r["epoch"] for r in rows] == ["1", "2"]
    assert all(0 <= float(r["val_acc"]) <= 1 and float(r["train_loss"]) > 0 for r in rows)
    ckpt = load_checkpoint(p1_run / "last.pt")
    assert ckpt["config"]["augment_policy"] == "trivialaugment" and ckpt["config"]["ema"] is True
    assert ckpt["optimizer"]["param_groups"][0]["nesterov"] is True
    ema = ckpt["ema"]
    assert ema["updates"] == ckpt["global_step"] == 8  # one update per optimizer step: 2 epochs of 4
    assert ema["module"].keys() == ckpt["model"].keys()
    name = "fc.weight"
    assert not torch.equal(ema["module"][name], ckpt["model"][name])  # the average is not the raw weights
    assert inference_weights(ckpt) is ema["module"]
    torch.load(p1_run / "last.pt", weights_only=True)  # plain tensors and numbers only


def test_best_checkpoint_holds_the_weights_that_scored(p1_run):
    """Evaluating what inference loads from best.pt reproduces the logged validation numbers of its epoch."""
    best = load_checkpoint(p1_run / "best.pt")
    cfg = from_dict(best["config"])
    task = make_task(cfg)
    model = model_from_checkpoint(best)
    for key, value in model.state_dict().items():
        assert torch.equal(value, best["ema"]["module"][key]), key
    metrics, _ = task.evaluate(model, task.load_val(), torch.device("cpu"))
    row = _rows(p1_run)[best["best_epoch"] - 1]
    assert metrics["val_acc"] == pytest.approx(float(row["val_acc"]), abs=1e-6)
    assert metrics["val_loss"] == pytest.approx(float(row["val_loss"]), abs=2e-6)
    raw = model_from_checkpoint({**best, "ema": None})  # the raw weights score differently
    raw_metrics, _ = task.evaluate(raw, task.load_val(), torch.device("cpu"))
    assert raw_metrics["val_loss"] != pytest.approx(metrics["val_loss"], abs=1e-6)


def test_classify_train_batches_carry_soft_targets_and_normalised_images():
    cfg = from_dict({"num_classes": 5, "cutmix": 1.0, "augment_policy": "randaugment", "random_erasing": 0.3})
    task = make_task(cfg)
    images = torch.randint(0, 256, (6, 3, 32, 32), dtype=torch.uint8)
    labels = torch.tensor([0, 1, 2, 3, 4, 0])
    x, t = task.prepare_train(images, labels, torch.Generator().manual_seed(0))
    assert x.shape == (6, 3, 32, 32) and x.dtype == torch.float32 and x.abs().max() < 5  # normalised
    assert t.shape == (6, 5)
    torch.testing.assert_close(t.sum(1), torch.ones(6))
    loss = task.loss(torch.randn(6, 5), t)
    assert loss.ndim == 0 and torch.isfinite(loss)
    correct, n = task.correct(torch.eye(5)[[0, 1, 2, 3, 4, 0]] * 10, t)
    assert n == 6 and 0 <= int(correct) <= 6
    off = make_task(from_dict({"num_classes": 5, "augment": False, "cutmix": 1.0}))
    assert off.batch_augment is None  # augment false: no random augmentation at all


@pytest.mark.slow
def test_segmentation_run_with_ema(tmp_path):
    data = make_segmentation_data(tmp_path / "p2", n_train=4, n_val=2, size=64)
    run = tmp_path / "run"
    rc = train_once(
        segment_train_argv(data, run, "--ema", "true", "--ema-decay", "0.5"),
        tmp_path / "cache",
    )
    assert rc == 0
    best = load_checkpoint(run / "best.pt")
    assert best["ema"]["updates"] == best["global_step"] == 2 * best["best_epoch"]  # 2 steps per epoch
    model = model_from_checkpoint(best)
    key = next(k for k in best["model"] if best["model"][k].is_floating_point() and "weight" in k)
    assert torch.equal(model.state_dict()[key], best["ema"]["module"][key])
