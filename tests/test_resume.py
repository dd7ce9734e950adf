"""Exact resume: a run killed (SIGKILL) after an epoch, or stopped by SIGINT in the middle of one, and
resumed with ``--resume RUN_DIR`` ends with the same ``metrics.csv`` and weights as an uninterrupted run
(CPU, ``--deterministic``; torch/numpy/python/augmentation RNG states and the data position are saved)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from fcnlab.checkpoint import load_checkpoint
from fcnlab.cli.main import main
from fcnlab.data.synthetic import make_classification_data
from train_once import segment_train_argv

ARGS = [
    "--model",
    "resnet18",
    "--num-classes",
    "4",
    "--epochs",
    "3",
    "--batch-size",
    "6",
    "--lr",
    "0.02",
    "--device",
    "cpu",
    "--deterministic",
    "true",
    "--log-every",
    "1000",
    "--seed",
    "3",
]


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    """24 training images (4 steps of 6 per epoch) and 12 validation images of 4 synthetic classes."""
    return make_classification_data(
        tmp_path_factory.mktemp("resume") / "p1", num_classes=4, train_per_class=6, val_per_class=3
    )


# every random P1 training feature (per-sample policy and erasing from the augmentation generator, CutMix/MixUp
# from torch's RNG) and the moving average, which a resumed run must continue exactly
FEATURES = [
    "--augment-policy",
    "trivialaugment",
    "--random-erasing",
    "0.5",
    "--cutmix",
    "1.0",
    "--mixup",
    "0.5",
    "--mix-prob",
    "0.7",
    "--ema",
    "true",
    "--ema-decay",
    "0.8",
]


def train_argv(data: Path, out: Path, *extra: str) -> list[str]:
    return [
        "classify",
        "train",
        "--data",
        str(data / "train_50"),
        "--val",
        str(data / "val_50"),
        "--out",
        str(out),
        *ARGS,
        *extra,
    ]


def _reference_run(data: Path, out: Path, *extra: str) -> Path:
    """The uninterrupted run, with one thread like every other run here (CPU results depend on threads)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with pytest.MonkeyPatch.context() as mp:
            mp.setenv("FCNLAB_CACHE", str(out.parent / "cache"))
            assert main(train_argv(data, out, *extra)) == 0
    finally:
        torch.set_num_threads(threads)
    return out


@pytest.fixture(scope="module")
def reference(data, tmp_path_factory) -> Path:
    return _reference_run(data, tmp_path_factory.mktemp("reference") / "run")


@pytest.fixture(scope="module")
def reference_features(data, tmp_path_factory) -> Path:
    return _reference_run(data, tmp_path_factory.mktemp("reference_features") / "run", *FEATURES)


def interrupt_at_step(monkeypatch: pytest.MonkeyPatch, task_class: type, step: int) -> Callable:
    """Make ``task_class.prepare_train`` raise SIGINT at its ``step``-th call (1-based, counted over epochs), as
    Ctrl-C would in the middle of that training step; returns the original method to put back."""
    original = task_class.prepare_train
    calls = []

    def prepare_train(self, images, targets, gen):
        calls.append(1)
        if len(calls) == step:
            signal.raise_signal(signal.SIGINT)
        return original(self, images, targets, gen)

    monkeypatch.setattr(task_class, "prepare_train", prepare_train)
    return original


def max_weight_diff(a: Path, b: Path, key: str = "model") -> float:
    ca, cb = load_checkpoint(a / "last.pt"), load_checkpoint(b / "last.pt")
    wa, wb = (ca[key], cb[key]) if key == "model" else (ca[key]["module"], cb[key]["module"])
    assert wa.keys() == wb.keys()
    return max(float((wa[k].double() - wb[k].double()).abs().max()) for k in wa if wa[k].numel())


def assert_same_run(run: Path, reference: Path) -> None:
    assert (run / "metrics.csv").read_text() == (reference / "metrics.csv").read_text()
    assert max_weight_diff(run, reference) <= 1e-6
    if "ema" in load_checkpoint(reference / "last.pt"):
        assert max_weight_diff(run, reference, "ema") <= 1e-6
    ckpt = load_checkpoint(run / "last.pt")
    assert (ckpt["epoch"], ckpt["step_in_epoch"]) == (3, 0)


def test_reference_run_is_complete(reference):
    rows = (reference / "metrics.csv").read_text().splitlines()
    assert rows[0].startswith("epoch,lr,train_loss,train_acc,val_loss,val_acc") and len(rows) == 4
    assert len({r.split(",")[1] for r in rows[1:]}) == 3  # warm-up then cosine: three different rates


@pytest.mark.slow
def test_sigkill_after_an_epoch_then_resume_equals_uninterrupted(data, reference, tmp_path, capsys):
    out = tmp_path / "run"
    proc = subprocess.Popen(
        [sys.executable, "-m", "fcnlab", *train_argv(data, out)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env={**os.environ, "FCNLAB_CACHE": str(tmp_path / "cache")},
    )
    deadline = time.monotonic() + 240
    metrics = out / "metrics.csv"
    while proc.poll() is None and time.monotonic() < deadline:
        if metrics.is_file() and len(metrics.read_text().splitlines()) >= 2:  # epoch 1 is done
            break
        time.sleep(0.02)
    assert proc.poll() is None, f"training ended before it could be killed: {proc.stderr.read()}"
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)
    proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL
    ckpt = load_checkpoint(out / "last.pt")  # the previous checkpoint is intact
    assert ckpt["epoch"] >= 1 and ckpt["step_in_epoch"] == 0
    assert main(["classify", "train", "--resume", str(out)]) == 0
    assert f"resuming {out} at epoch {ckpt['epoch'] + 1} step 0" in capsys.readouterr().out
    assert_same_run(out, reference)


@pytest.mark.slow
def test_sigint_mid_epoch_then_resume_equals_uninterrupted(data, reference, tmp_path, capsys, monkeypatch):
    """SIGINT arrives during step 2 of epoch 2: the step finishes, last.pt is saved there, exit 130."""
    from fcnlab.tasks import ClassificationTask

    original = ClassificationTask.prepare_train
    calls = []

    def prepare_train(self, images, targets, gen):
        calls.append(1)
        if len(calls) == 6:  # 4 steps per epoch: epoch 2, step 2
            signal.raise_signal(signal.SIGINT)
        return original(self, images, targets, gen)

    monkeypatch.setattr(ClassificationTask, "prepare_train", prepare_train)
    out = tmp_path / "run"
    assert main(train_argv(data, out)) == 130
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        f"fcnlab: error: stopped by SIGINT at epoch 2 step 2; resumable checkpoint {out / 'last.pt'}; "
        f"continue with --resume {out}"
    ]
    ckpt = load_checkpoint(out / "last.pt")
    assert (ckpt["epoch"], ckpt["step_in_epoch"], ckpt["global_step"]) == (1, 2, 6)
    assert len((out / "metrics.csv").read_text().splitlines()) == 2  # only epoch 1 so far
    monkeypatch.setattr(ClassificationTask, "prepare_train", original)
    assert main(["classify", "train", "--resume", str(out)]) == 0
    assert "resuming" in capsys.readouterr().out
    assert_same_run(out, reference)


@pytest.mark.slow
def test_sigint_mid_epoch_then_resume_equals_uninterrupted_with_augmentation_and_ema(
    data, reference_features, tmp_path, capsys, monkeypatch
):
    from fcnlab.tasks import ClassificationTask

    original = interrupt_at_step(monkeypatch, ClassificationTask, 7)  # epoch 2, step 3
    out = tmp_path / "run"
    assert main(train_argv(data, out, *FEATURES)) == 130
    ckpt = load_checkpoint(out / "last.pt")
    assert (ckpt["epoch"], ckpt["step_in_epoch"], ckpt["ema"]["updates"]) == (1, 3, 7)
    monkeypatch.setattr(ClassificationTask, "prepare_train", original)
    capsys.readouterr()
    assert main(["classify", "train", "--resume", str(out)]) == 0
    assert "resuming" in capsys.readouterr().out
    assert_same_run(out, reference_features)
    last = load_checkpoint(out / "last.pt")  # the features were on: the average is not the raw weights
    assert last["config"]["cutmix"] == 1.0 and not torch.equal(
        last["ema"]["module"]["fc.weight"], last["model"]["fc.weight"]
    )


def test_resume_extends_the_run_and_updates_its_config(reference, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(reference, run)
    (run / ".last.pt.k3j4h2.pt").write_bytes(b"half a checkpoint")  # what a SIGKILL during a save leaves
    assert main(["classify", "train", "--resume", str(run), "--epochs", "4"]) == 0
    rows = (run / "metrics.csv").read_text().splitlines()
    assert rows[:4] == (reference / "metrics.csv").read_text().splitlines() and rows[4].startswith("4,")
    assert "epochs: 4" in (run / "config.yaml").read_text()
    assert load_checkpoint(run / "last.pt")["epoch"] == 4
    assert not list(run.glob(".last.pt.*"))


def test_resuming_a_finished_run_says_so(reference, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(reference, run)
    before = (run / "last.pt").stat().st_mtime_ns
    assert main(["classify", "train", "--resume", str(run)]) == 0
    assert (
        "training is already complete (3 epochs); nothing was trained or changed; pass --epochs N (more "
        "than 3)" in capsys.readouterr().out
    )
    assert (run / "last.pt").stat().st_mtime_ns == before


@pytest.mark.parametrize(
    "extra, message",
    [
        (
            ["--epochs", "2"],
            "--epochs 2: the run has already trained 3 epochs; give --epochs 4 or more to train "
            "further, or start a new run with --out",
        ),
        (["--lr", "0.5"], "--lr 0.5 (the run has 0.02) would change the settings of the 3 epochs already trained"),
        (["--epochs", "5", "--seed", "1"], "--seed 1 (the run has 3) would change the settings of the 3 epochs"),
    ],
)
def test_a_resume_that_would_rewrite_finished_epochs_is_refused_and_changes_nothing(
    reference, tmp_path, capsys, extra, message
):
    run = tmp_path / "run"
    shutil.copytree(reference, run)
    before = {name: (run / name).read_bytes() for name in ("config.yaml", "metrics.csv", "last.pt")}
    assert main(["classify", "train", "--resume", str(run), *extra]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"--resume {run}" in err[0] and message in err[0], err
    assert {name: (run / name).read_bytes() for name in before} == before


def test_a_finished_run_resumed_with_run_options_only_trains_nothing_and_keeps_its_config(reference, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(reference, run)
    config = (run / "config.yaml").read_bytes()
    metrics = (run / "metrics.csv").read_text()
    (run / "metrics.csv").write_text(metrics.rsplit("\n", 2)[0] + "\n")  # a kill took the last row away
    assert main(["classify", "train", "--resume", str(run), "--workers", "0", "--epochs", "3"]) == 0
    assert "training is already complete (3 epochs); nothing was trained" in capsys.readouterr().out
    assert (run / "config.yaml").read_bytes() == config and (run / "metrics.csv").read_text() == metrics


@pytest.mark.parametrize(
    "extra, message",
    [
        ([], "no last.pt in that folder"),
        (["--out", "elsewhere"], "a resumed run continues in its own folder"),
        (["--config", "p1_vgg16bn"], "the run's config comes from its last.pt"),
    ],
)
def test_bad_resume_requests_are_refused(tmp_path, capsys, extra, message):
    run = tmp_path / "run"
    run.mkdir()
    assert main(["classify", "train", "--resume", str(run), *extra]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0]


def test_weights_only_load_of_every_checkpoint(reference):
    """last.pt and best.pt load with torch.load(weights_only=True) and hold every RNG state."""
    for name in ("last.pt", "best.pt"):
        ckpt = torch.load(reference / name, map_location="cpu", weights_only=True)
        assert {"torch", "numpy", "python", "augment"} <= set(ckpt["rng"])
        assert ckpt["config"]["deterministic"] is True


# P2's random training features: D4 and zoom, colour jitter and CutMix (all from the augmentation generator),
# rare-class sampling (the sampler's order) and the moving average
SEGMENT_FEATURES = [
    "--num-classes",
    "7",
    "--min-scale",
    "0.8",
    "--color-jitter",
    "0.2",
    "--cutmix",
    "1.0",
    "--mix-prob",
    "0.7",
    "--sampling",
    "rare",
    "--ema",
    "true",
    "--ema-decay",
    "0.8",
]


def segment_argv(data: Path, out: Path) -> list[str]:
    # ARGS without --model resnet18 --num-classes 4 come after the helper's options and so override them
    return segment_train_argv(data, out, *ARGS[4:], *SEGMENT_FEATURES, model="fpn_lite16", image_size=32)


@pytest.mark.slow
def test_segment_sigint_mid_epoch_then_resume_equals_uninterrupted_with_cutmix_jitter_and_ema(
    tmp_path, capsys, monkeypatch
):
    from fcnlab.data.synthetic import make_segmentation_data
    from fcnlab.tasks import SegmentationTask

    data = make_segmentation_data(tmp_path / "p2", n_train=12, n_val=2, size=64)  # 2 steps of 6 per epoch
    monkeypatch.setenv("FCNLAB_CACHE", str(tmp_path / "cache"))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        reference = tmp_path / "reference"
        assert main(segment_argv(data, reference)) == 0
        original = interrupt_at_step(monkeypatch, SegmentationTask, 3)  # epoch 2, step 1
        out = tmp_path / "run"
        assert main(segment_argv(data, out)) == 130
        ckpt = load_checkpoint(out / "last.pt")
        assert (ckpt["epoch"], ckpt["step_in_epoch"]) == (1, 1)
        monkeypatch.setattr(SegmentationTask, "prepare_train", original)
        capsys.readouterr()
        assert main(["segment", "train", "--resume", str(out)]) == 0
    finally:
        torch.set_num_threads(threads)
    assert "resuming" in capsys.readouterr().out
    assert_same_run(out, reference)
    assert load_checkpoint(out / "last.pt")["config"]["cutmix"] == 1.0
