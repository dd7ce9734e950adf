"""Repeated SIGINT/SIGTERM while a checkpoint is being written: the write finishes, one line says what was
saved, exit 130 (SIGINT) or 143 (SIGTERM); never two chained tracebacks or a half-written last.pt.

The signals are real (sent to a training subprocess, or raised in this process with ``signal.raise_signal``);
the disk is made slow (``torch.save``'s bytes reach the file in 40 pieces over about two seconds) so that the
signals land while the write is in progress.
"""

from __future__ import annotations

import inspect
import io
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from fcnlab.checkpoint import load_checkpoint
from fcnlab.cli.main import main
from fcnlab.data.synthetic import make_classification_data
from test_signals import lines_of, wait_for_line

COMMON = [
    "--model",
    "resnet18",
    "--num-classes",
    "4",
    "--lr",
    "0.01",
    "--device",
    "cpu",
    "--seed",
    "1",
    "--batch-size",
    "3",
    "--log-every",
    "1",
]

_fast_save = torch.save


def slow_save(obj, f, *args, **kwargs):
    """``torch.save`` on a slow disk: the bytes reach ``f`` in 40 pieces over about two seconds."""
    buf = io.BytesIO()
    _fast_save(obj, buf, *args, **kwargs)
    data = buf.getvalue()
    piece = -(-len(data) // 40)
    for start in range(0, len(data), piece):
        f.write(data[start : start + piece])
        f.flush()
        time.sleep(0.05)


#: ``fcnlab`` on the slow disk, in a subprocess
TRAIN = f"""
import io, sys, time
import torch
_fast_save = torch.save
{inspect.getsource(slow_save)}
torch.save = slow_save
from fcnlab.cli.main import main
sys.exit(main(sys.argv[1:]))
"""


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    """24 training images: 8 steps of 3 per epoch."""
    return make_classification_data(
        tmp_path_factory.mktemp("signals") / "p1", num_classes=4, train_per_class=6, val_per_class=2
    )


def argv(data: Path, out: Path, epochs: int) -> list[str]:
    return [
        "classify",
        "train",
        "--data",
        str(data / "train_50"),
        "--val",
        str(data / "val_50"),
        "--out",
        str(out),
        "--epochs",
        str(epochs),
        *COMMON,
    ]


def writing(run: Path) -> bool:
    """A checkpoint is being written (atomic saves write ``.last.pt.XXXX.pt`` first)."""
    return run.is_dir() and any(run.glob(".last.pt.*"))


def wait_until(condition, proc: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline and proc.poll() is None, "no checkpoint write began"
        time.sleep(0.002)


def signals_in_step(monkeypatch, step: int, signals: tuple[int, ...], before=None) -> None:
    """Raise ``signals`` (for real, to this process) in the loss of training step ``step`` (1-based, counted
    over the whole run: 8 steps an epoch), after calling ``before()``."""
    from fcnlab.tasks import ClassificationTask

    original = ClassificationTask.loss
    calls = []

    def loss(self, logits, targets):
        calls.append(1)
        if len(calls) == step:
            if before is not None:
                before()
            for sig in signals:
                signal.raise_signal(sig)
        return original(self, logits, targets)

    monkeypatch.setattr(ClassificationTask, "loss", loss)


@pytest.mark.slow
def test_signals_sent_during_the_interrupt_save_let_it_finish_then_one_line(data, tmp_path):
    """A training process: SIGTERM in epoch 1, then SIGINT, SIGTERM, SIGINT while its checkpoint is written."""
    first, more, code = signal.SIGTERM, [signal.SIGINT, signal.SIGTERM, signal.SIGINT], 143
    run = tmp_path / "run"
    proc = subprocess.Popen(
        [sys.executable, "-c", TRAIN, *argv(data, run, 2)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    wait_for_line(lines_of(proc.stdout), "epoch 1/2 step 2/8")
    proc.send_signal(first)
    wait_until(lambda: writing(run), proc)  # the save of the stop position has begun (about two seconds long)
    for sig in more:
        proc.send_signal(sig)
        time.sleep(0.05)
    assert writing(run)  # every signal landed during the write
    rc = proc.wait(timeout=120)
    err = proc.stderr.read()
    proc.stderr.close()
    lines = [line for line in err.splitlines() if line.strip()]
    assert rc == code and len(lines) == 1, (rc, err)
    name = signal.Signals(first).name
    assert lines[0].startswith(f"fcnlab: error: stopped by {name} at epoch 1 step ")
    assert lines[0].endswith(f"resumable checkpoint {run / 'last.pt'}; continue with --resume {run}")
    step = int(lines[0].split(" step ")[1].split(";")[0])
    ckpt = load_checkpoint(run / "last.pt")  # complete: the write was not cut short
    assert (ckpt["epoch"], ckpt["step_in_epoch"]) == (0, step) and 0 < step < 8
    assert not writing(run)


def test_signals_in_the_middle_of_the_interrupt_save_are_recorded_not_raised(data, tmp_path, capsys, monkeypatch):
    """In-process: SIGINT at epoch 1 step 3, then SIGINT, SIGTERM, SIGINT half way through writing the stop's
    checkpoint; the write finishes, exit 130 (the first signal's)."""
    run = tmp_path / "run"
    signals_in_step(monkeypatch, 3, (signal.SIGINT,))

    def save_with_signals(obj, f, *args, **kwargs):
        buf = io.BytesIO()
        _fast_save(obj, buf, *args, **kwargs)
        data = buf.getvalue()
        f.write(data[: len(data) // 2])
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGINT):
            signal.raise_signal(sig)  # its handler runs here, between two writes
        f.write(data[len(data) // 2 :])

    monkeypatch.setattr(torch, "save", save_with_signals)
    assert main(argv(data, run, 2)) == 130
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert err == [
        f"fcnlab: error: stopped by SIGINT at epoch 1 step 3; resumable checkpoint {run / 'last.pt'}; "
        f"continue with --resume {run}"
    ]
    ckpt = load_checkpoint(run / "last.pt")  # whole: both halves were written
    assert (ckpt["epoch"], ckpt["step_in_epoch"]) == (0, 3) and not writing(run)


def test_a_second_signal_while_training_stops_at_once_after_the_background_write(data, tmp_path, capsys, monkeypatch):
    """In-process: SIGTERM then SIGINT in the first step of epoch 2, while epoch 1's checkpoint is still being
    written in the background (on a slow disk); training stops there, the write finishes, exit 130 (the
    stopping signal's)."""
    run = tmp_path / "run"

    def in_flight() -> None:
        assert writing(run)  # epoch 1's checkpoint is being written

    signals_in_step(monkeypatch, 9, (signal.SIGTERM, signal.SIGINT), before=in_flight)  # epoch 2 step 1
    monkeypatch.setattr(torch, "save", slow_save)
    # what the process had: Python's default_int_handler, or SIG_IGN when started in the background by a shell
    previous = signal.getsignal(signal.SIGINT)
    assert main(argv(data, run, 2)) == 130
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert err == [
        f"fcnlab: error: stopped at once by a second SIGINT; resumable checkpoint {run / 'last.pt'} "
        f"(saved at the end of epoch 1); continue with --resume {run}"
    ]
    ckpt = load_checkpoint(run / "last.pt")
    assert (ckpt["epoch"], ckpt["step_in_epoch"]) == (1, 0) and not writing(run)
    assert len((run / "metrics.csv").read_text().splitlines()) == 2  # the epoch's row followed its checkpoint
    assert signal.getsignal(signal.SIGINT) is previous  # the handlers are put back
