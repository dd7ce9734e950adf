"""``train --procs N``: N DDP processes on this machine from one command, one clean exit code."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import torch

from fcnlab.cli.main import main
from fcnlab.data.synthetic import make_classification_data
from fcnlab.runtime import launch
from train_once import classify_train_argv


def _argv(data: Path, run: Path, *extra: str) -> list[str]:
    return classify_train_argv(data, run, *extra, epochs=1, batch_size=4)


def test_process_env_is_torchruns():
    env = launch.process_env(2, 1, 29555, base={"PATH": "/bin"})
    assert {k: env[k] for k in ("RANK", "LOCAL_RANK", "WORLD_SIZE", "LOCAL_WORLD_SIZE")} == {
        "RANK": "1",
        "LOCAL_RANK": "1",
        "WORLD_SIZE": "2",
        "LOCAL_WORLD_SIZE": "2",
    }
    assert env["MASTER_ADDR"] == "127.0.0.1" and env["MASTER_PORT"] == "29555" and env["PATH"] == "/bin"
    assert int(env["OMP_NUM_THREADS"]) >= 1
    assert launch.process_env(2, 0, 1, base={"OMP_NUM_THREADS": "3"})["OMP_NUM_THREADS"] == "3"  # the user's own


@pytest.mark.slow
def test_two_processes_train_one_run_and_a_failure_gives_its_exit_code(tmp_path, capfd, monkeypatch):
    monkeypatch.delenv("RANK", raising=False)
    data = make_classification_data(tmp_path / "p1", num_classes=4, train_per_class=4, val_per_class=2)
    run = tmp_path / "run"
    # a spent time budget: every process must plan the same cut (3 epochs -> 1) and stop together
    budget = ("--epochs", "3", "--warmup-epochs", "1", "--time-budget", "0.0001")
    assert main(_argv(data, run, "--procs", "2", *budget)) == 0
    out = capfd.readouterr().out
    assert "(2 processes)" in out and out.count("fcnlab: starting") == 1  # rank 0 alone prints
    assert out.count("-> 1 epoch (was 3)") == 1
    assert (run / "last.pt").is_file()
    ckpt = torch.load(run / "last.pt", weights_only=True)
    assert ckpt["epoch"] == 1 and ckpt["config"]["epochs"] == 1 and ckpt["budget_planned"]
    env = json.loads((run / "env.json").read_text())
    assert "--procs 2" in env["command"]
    # the same --out again: the processes refuse the existing run (exit 2), and so does the command
    assert main(_argv(data, run, "--procs", "2")) == 2
    err = capfd.readouterr().err
    assert err.count("fcnlab: error:") == 1 and str(run) in err


def test_bad_options_are_refused_before_any_process_starts(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("RANK", raising=False)

    def no_process(*args, **kwargs):
        raise AssertionError("a process was started")

    monkeypatch.setattr(subprocess, "Popen", no_process)
    data = make_classification_data(tmp_path / "p1", num_classes=4, train_per_class=4, val_per_class=2)
    assert main(_argv(data, tmp_path / "run", "--procs", "2", "--val", str(tmp_path / "missing"))) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "missing" in err[0]
    assert main(_argv(data, tmp_path / "run", "--procs", "0")) == 2
    assert capsys.readouterr().err.strip() == "fcnlab: error: option --procs: must be >= 1, got 0"
    assert not (tmp_path / "run").exists()


def _launcher(tmp_path: Path, child: str, **popen: Any) -> subprocess.Popen:
    """A process running ``run_processes(2, ...)`` over ``python -c child`` (signals need its own main thread)."""
    code = (
        "import sys\nfrom fcnlab.runtime.launch import run_processes\n"
        f"sys.exit(run_processes(2, [], command=[sys.executable, '-c', {child!r}]))\n"
    )
    script = tmp_path / "launcher.py"
    script.write_text(code)
    return subprocess.Popen([sys.executable, str(script)], **popen)


def test_the_first_failure_stops_the_other_process_and_is_the_exit_code(tmp_path):
    # rank 1 fails at once with 3; rank 0 would sleep for a minute
    child = "import os, sys, time\nif os.environ['RANK'] == '1': sys.exit(3)\ntime.sleep(60)"
    t0 = time.monotonic()
    assert _launcher(tmp_path, child).wait(timeout=30) == 3
    assert time.monotonic() - t0 < 30


def test_sigterm_is_passed_on_to_every_process(tmp_path):
    marks = tmp_path / "marks"
    marks.mkdir()
    child = (
        "import os, signal, sys, time\n"
        f"def stop(*a):\n    open(os.path.join({str(marks)!r}, os.environ['RANK']), 'w').close()\n    sys.exit(7)\n"
        "signal.signal(signal.SIGTERM, stop)\n"
        f"open(os.path.join({str(marks)!r}, 'ready' + os.environ['RANK']), 'w').close()\n"
        "time.sleep(60)"
    )
    launcher = _launcher(tmp_path, child)
    deadline = time.monotonic() + 30
    while len(list(marks.glob("ready*"))) < 2 and time.monotonic() < deadline:
        time.sleep(0.1)
    launcher.send_signal(signal.SIGTERM)
    assert launcher.wait(timeout=30) == 7
    assert sorted(p.name for p in marks.iterdir()) == ["0", "1", "ready0", "ready1"]


def test_an_error_of_another_process_than_rank_0_is_shown_once(tmp_path):
    # rank 1 fails with a one-line error (a GPU it lacks, say) that only it prints; rank 0 would train on
    child = (
        "import os, sys, time\n"
        "if os.environ['RANK'] == '1':\n"
        "    assert os.environ.get('FCNLAB_RANK_ERRORS')\n"
        "    print('fcnlab: error: option --device: cuda:1 does not exist', file=sys.stderr)\n"
        "    sys.exit(2)\n"
        "time.sleep(60)"
    )
    launcher = _launcher(tmp_path, child, stderr=subprocess.PIPE)
    _, err = launcher.communicate(timeout=30)
    assert launcher.returncode == 2
    assert err.decode().splitlines() == ["fcnlab: error: option --device: cuda:1 does not exist (process 1 of 2)"]


def test_rank_0s_own_error_is_not_repeated(tmp_path):
    child = "import sys\nprint('fcnlab: error: bad', file=sys.stderr)\nsys.exit(2)"  # every rank fails alike
    launcher = _launcher(tmp_path, child, stderr=subprocess.PIPE)
    _, err = launcher.communicate(timeout=30)
    assert launcher.returncode == 2 and err.decode().splitlines() == ["fcnlab: error: bad"]


def test_more_processes_than_gpus_is_refused(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("RANK", raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.setattr(subprocess, "Popen", None)  # nothing may start
    data = make_classification_data(tmp_path / "p1", num_classes=4, train_per_class=4, val_per_class=2)
    argv = [a if a != "cpu" else "cuda" for a in _argv(data, tmp_path / "run", "--procs", "2")]
    assert main(argv) == 2
    assert capsys.readouterr().err.strip() == (
        "fcnlab: error: option --procs 2: one process per GPU, and 1 GPU(s) are visible; use --procs 1 or --device cpu"
    )
