"""Crash safety of real training processes: SIGTERM saves a resumable checkpoint after the current step and
exits 143; SIGKILL in the middle of writing a checkpoint leaves the previous one valid."""

from __future__ import annotations

import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import torch

from fcnlab.checkpoint import load_checkpoint
from fcnlab.cli.main import main
from fcnlab.data.synthetic import make_classification_data

COMMON = ["--model", "resnet18", "--num-classes", "4", "--lr", "0.01", "--device", "cpu", "--seed", "1"]


@pytest.fixture(autouse=True)
def _unbuffered(monkeypatch):
    """Training subprocesses print each line at once (the tests wait for them)."""
    monkeypatch.setenv("PYTHONUNBUFFERED", "1")


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    return make_classification_data(
        tmp_path_factory.mktemp("signals") / "p1", num_classes=4, train_per_class=6, val_per_class=2
    )


def start(data: Path, out: Path, *args: str, resume: bool = False) -> subprocess.Popen:
    where = (
        ["--resume", str(out)]
        if resume
        else ["--data", str(data / "train_50"), "--val", str(data / "val_50"), "--out", str(out), *COMMON]
    )
    return subprocess.Popen(
        [sys.executable, "-m", "fcnlab", "classify", "train", *where, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def lines_of(stream) -> queue.Queue:
    """Lines of a pipe, read by a thread (so that waiting for one can time out)."""
    q: queue.Queue = queue.Queue()

    def pump():
        for line in stream:
            q.put(line)
        q.put(None)

    threading.Thread(target=pump, daemon=True).start()
    return q


def wait_for_line(q: queue.Queue, needle: str, timeout: float = 240) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            line = q.get(timeout=max(deadline - time.monotonic(), 0.01))
        except queue.Empty:
            break
        if line is None:
            break
        if needle in line:
            return line
    raise AssertionError(f"no line containing {needle!r}")


@pytest.mark.slow
def test_sigterm_saves_after_the_current_step_and_exits_143(data, tmp_path, capsys):
    out = tmp_path / "run"
    # 24 images in steps of 3: 8 steps per epoch, one log line per step (stdout is not a terminal)
    proc = start(data, out, "--epochs", "2", "--batch-size", "3", "--log-every", "1")
    q = lines_of(proc.stdout)
    wait_for_line(q, "epoch 1/2 step 2/8")
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=120) == 143
    err = proc.stderr.read().strip().splitlines()
    proc.stderr.close()
    assert len(err) == 1 and "Traceback" not in err[0], err
    assert err[0].startswith("fcnlab: error: stopped by SIGTERM at epoch 1 step ")
    assert err[0].endswith(f"resumable checkpoint {out / 'last.pt'}; continue with --resume {out}")
    ckpt = load_checkpoint(out / "last.pt")
    stopped_at = int(err[0].split(" step ")[1].split(";")[0])
    assert (ckpt["epoch"], ckpt["step_in_epoch"], ckpt["global_step"]) == (0, stopped_at, stopped_at)
    assert 2 <= stopped_at < 8
    assert main(["classify", "train", "--resume", str(out)]) == 0
    assert f"resuming {out} at epoch 1 step {stopped_at}" in capsys.readouterr().out
    assert len((out / "metrics.csv").read_text().splitlines()) == 3
    assert load_checkpoint(out / "last.pt")["global_step"] == 16


def temp_checkpoint(run: Path) -> Path | None:
    """A checkpoint being written right now (atomic saves write ``.last.pt.XXXX.pt`` first)."""
    if not run.is_dir():
        return None
    return next(iter(run.glob(".last.pt.*")), None)


def kill_during_a_save(proc: subprocess.Popen, run: Path, after_epoch: int, timeout: float = 240) -> Path:
    """SIGKILL ``proc`` while it writes the checkpoint of an epoch after ``after_epoch``; return the temp file.

    metrics.csv is written after each checkpoint, so its row count never exceeds last.pt's epoch.
    """
    deadline = time.monotonic() + timeout
    metrics = run / "metrics.csv"
    while time.monotonic() < deadline and proc.poll() is None:
        tmp = temp_checkpoint(run)
        if tmp is not None and metrics.is_file() and len(metrics.read_text().splitlines()) - 1 >= after_epoch:
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=60)
            return tmp
        time.sleep(0.002)
    raise AssertionError(f"no checkpoint save to interrupt (exit {proc.poll()}): {proc.stderr.read()}")


@pytest.mark.slow
def test_sigkill_while_saving_leaves_the_previous_checkpoint_valid(data, tmp_path, capsys):
    """One step and a checkpoint per epoch, so that saves take most of the time; kill -9 during two saves."""
    run = tmp_path / "run"
    args = ["--epochs", "100", "--batch-size", "4", "--limit", "4", "--val-limit", "2", "--log-every", "1000"]
    epochs, mid_save = [], []
    for round_ in range(2):
        proc = start(data, run, *args, resume=round_ > 0)
        tmp = kill_during_a_save(proc, run, after_epoch=max(epochs, default=0) + 1)
        proc.stdout.close()
        proc.stderr.close()
        assert proc.returncode == -signal.SIGKILL
        mid_save.append(tmp.exists())  # False only if the save finished in the instant before the kill
        ckpt = load_checkpoint(run / "last.pt")  # the previous checkpoint, intact
        torch.load(run / "last.pt", weights_only=True)
        assert ckpt["step_in_epoch"] == 0 and ckpt["epoch"] >= 1
        rows = (run / "metrics.csv").read_text().splitlines()[1:]
        assert len(rows) in (ckpt["epoch"], ckpt["epoch"] - 1)  # the log follows its checkpoint
        epochs.append(ckpt["epoch"])
    assert epochs[1] > epochs[0]
    assert any(mid_save), "no kill landed during a save"
    final = epochs[-1] + 1
    assert main(["classify", "train", "--resume", str(run), "--epochs", str(final)]) == 0
    assert f"resuming {run} at epoch {final} step 0" in capsys.readouterr().out
    assert temp_checkpoint(run) is None  # the stale temp files are cleaned up
    rows = (run / "metrics.csv").read_text().splitlines()[1:]
    assert [int(r.split(",")[0]) for r in rows] == list(range(1, final + 1))
    assert load_checkpoint(run / "best.pt")["epoch"] == int(load_checkpoint(run / "last.pt")["best_epoch"])


def test_signal_during_validation_stops_at_the_epoch_checkpoint(data, tmp_path, capsys, monkeypatch):
    """In-process: SIGTERM while epoch 1 is being evaluated; the epoch's checkpoint is the resumable one."""
    from fcnlab.tasks import ClassificationTask

    original = ClassificationTask.evaluate

    def evaluate(self, *args, **kwargs):
        signal.raise_signal(signal.SIGTERM)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(ClassificationTask, "evaluate", evaluate)
    out = tmp_path / "run"
    argv = [
        "classify",
        "train",
        "--data",
        str(data / "train_50"),
        "--val",
        str(data / "val_50"),
        "--out",
        str(out),
        *COMMON,
        "--epochs",
        "3",
        "--batch-size",
        "8",
    ]
    assert main(argv) == 143
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        f"fcnlab: error: stopped by SIGTERM at the end of epoch 1; resumable checkpoint {out / 'last.pt'}; "
        f"continue with --resume {out}"
    ]
    ckpt = load_checkpoint(out / "last.pt")
    assert (ckpt["epoch"], ckpt["step_in_epoch"]) == (1, 0)
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # the handlers are put back
