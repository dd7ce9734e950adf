"""Faults without loss while training: a full disk during a checkpoint, two writers on one run folder,
a resume with a changed shape or a damaged last.pt, and a SIGKILL between a checkpoint and its log row.

Faults are real: a tmpfs is the full disk (root only; skipped otherwise), a second process holds the run
lock, and a training subprocess kills itself with SIGKILL at chosen points (``KILL_AT``).
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from fcnlab.checkpoint import load_checkpoint
from fcnlab.cli.main import main
from fcnlab.data.synthetic import make_classification_data
from train_once import train_once

SRC = str(Path(__file__).resolve().parents[1] / "src")
ARGS = [
    "--model",
    "resnet18",
    "--num-classes",
    "4",
    "--batch-size",
    "6",
    "--lr",
    "0.02",
    "--device",
    "cpu",
    "--log-every",
    "1",
    "--seed",
    "3",
]


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    """24 training images (4 steps of 6 per epoch) and 12 validation images of 4 synthetic classes."""
    return make_classification_data(
        tmp_path_factory.mktemp("faults_train") / "p1", num_classes=4, train_per_class=6, val_per_class=3
    )


def train_argv(data: Path, out: Path, epochs: int = 1) -> list[str]:
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
        *ARGS,
    ]


@pytest.fixture(scope="module")
def finished(data, tmp_path_factory) -> Path:
    """A finished one-epoch run (last.pt and best.pt are that epoch's checkpoint)."""
    out = tmp_path_factory.mktemp("finished") / "run"
    assert train_once(train_argv(data, out), out.parent / "cache") == 0
    return out


def copy_run(run: Path, tmp_path: Path) -> Path:
    dest = tmp_path / "run"
    shutil.copytree(run, dest)  # best.pt becomes a copy: damaging last.pt leaves it intact
    return dest


def one_error_line(code: int, capsys) -> str:
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert code == 2 and len(err) == 1 and err[0].startswith("fcnlab: error: "), (code, err)
    return err[0]


def epochs_of(path: Path) -> list[int]:
    if not path.exists():
        return []
    with open(path, newline="") as f:
        return [int(r["epoch"]) for r in csv.DictReader(f)]


# ------------------------------------------------------------------------------------------ resume checks
@pytest.mark.parametrize(
    "extra, differs",
    [
        (["--model", "resnet34"], "--model resnet34 (the run has resnet18)"),
        (["--num-classes", "7"], "--num-classes 7 (the run has 4)"),
        (["--image-size", "64"], "--image-size 64 (the run has 32)"),
        (["--model", "resnet34", "--num-classes", "7"], "--model resnet34 (the run has resnet18), --num-classes 7"),
    ],
)
def test_resume_with_another_shape_says_what_differs(finished, tmp_path, capsys, extra, differs):
    run = copy_run(finished, tmp_path)
    before = (run / "last.pt").read_bytes()
    line = one_error_line(main(["classify", "train", "--resume", str(run), "--epochs", "2", *extra]), capsys)
    assert f"--resume {run}: the checkpoint was trained with other shapes: {differs}" in line
    assert "drop those options to resume it" in line
    assert (run / "last.pt").read_bytes() == before and epochs_of(run / "metrics.csv") == [1]


def test_resuming_a_run_of_the_other_task_is_refused(finished, tmp_path, capsys):
    run = copy_run(finished, tmp_path)
    line = one_error_line(main(["segment", "train", "--resume", str(run), "--epochs", "2"]), capsys)
    assert (
        f"--resume {run}: is a classify run (resnet18), not a segment run; resume it with 'fcnlab classify "
        f"train --resume {run}'" in line
    )


def test_a_resume_compares_resolved_values_so_the_same_value_spelled_otherwise_changes_nothing(finished, tmp_path):
    from fcnlab.training.fit import resume_config

    cfg, ckpt = resume_config(copy_run(finished, tmp_path), {"epochs": 2, "lr": "2e-2", "workers": 0})
    assert cfg.lr == 0.02 and cfg.workers == 0 and ckpt["changed_settings"] == {}


def test_change_settings_trains_the_remaining_epochs_with_them_and_keeps_the_earlier_config(finished, tmp_path, capsys):
    run = copy_run(finished, tmp_path)
    before = (run / "config.yaml").read_text()
    line = one_error_line(
        main(["classify", "train", "--resume", str(run), "--change-settings", "--lr", "0.01"]), capsys
    )
    assert (
        f"--resume {run} --change-settings: the run has trained all its 1 epoch, so no epoch is left to train "
        f"with --lr 0.01 (the run has 0.02); add --epochs 2 or more" in line
    )
    line = one_error_line(main(["classify", "train", "--resume", str(run), "--epochs", "2", "--lr", "0.01"]), capsys)
    assert "--lr 0.01 (the run has 0.02) would change the settings of the 1 epoch already trained" in line
    assert "add --change-settings to train the remaining epochs with it" in line
    assert (run / "config.yaml").read_text() == before and not list(run.glob("config_until_*"))
    assert main(["classify", "train", "--resume", str(run), "--epochs", "2", "--lr", "0.01", "--change-settings"]) == 0
    assert (run / "config_until_epoch_1.yaml").read_text() == before and "lr: 0.02" in before
    assert "lr: 0.01" in (run / "config.yaml").read_text() and "epochs: 2" in (run / "config.yaml").read_text()
    ckpt = load_checkpoint(run / "last.pt")
    assert ckpt["config"]["lr"] == 0.01 and epochs_of(run / "metrics.csv") == [1, 2]
    # the new peak rate is what epoch 2 trained with, not the one the restored optimizer state brought back
    assert ckpt["scheduler"]["base_lrs"] == [0.01] * len(ckpt["scheduler"]["base_lrs"])
    assert all(g["initial_lr"] == 0.01 for g in ckpt["optimizer"]["param_groups"])
    line = one_error_line(
        main(["classify", "train", "--data", "x", "--val", "y", "--out", str(tmp_path / "new"), "--change-settings"]),
        capsys,
    )
    assert "option --change-settings: only with --resume RUN_DIR" in line


@pytest.mark.slow
def test_a_damaged_last_pt_points_to_from_best_which_resumes(finished, tmp_path, capsys):
    run = copy_run(finished, tmp_path)
    damaged = run / "last.pt"
    damaged.write_bytes(damaged.read_bytes()[:1000])
    line = one_error_line(main(["classify", "train", "--resume", str(run), "--epochs", "2"]), capsys)
    assert line.startswith(f"fcnlab: error: {damaged}: not a readable checkpoint")
    assert f"resume from the best epoch's checkpoint instead: --resume {run} --from best" in line
    assert main(["classify", "train", "--resume", str(run), "--from", "best", "--epochs", "2"]) == 0
    assert "resuming" in capsys.readouterr().out
    assert load_checkpoint(run / "last.pt")["epoch"] == 2
    assert epochs_of(run / "metrics.csv") == [1, 2] and epochs_of(run / "timing.csv") == [1, 2]


def test_from_needs_resume_and_a_best_pt(finished, tmp_path, capsys):
    line = one_error_line(
        main(["classify", "train", "--data", "x", "--val", "y", "--out", str(tmp_path / "r"), "--from", "best"]), capsys
    )
    assert "option --from best: only with --resume RUN_DIR" in line
    run = copy_run(finished, tmp_path)
    (run / "last.pt").unlink()  # e.g. deleted by hand after it was damaged
    line = one_error_line(main(["classify", "train", "--resume", str(run)]), capsys)
    assert line.endswith(f"--resume {run}: no last.pt in that folder to resume from; it holds best.pt: add --from best")
    (run / "best.pt").unlink()
    line = one_error_line(main(["classify", "train", "--resume", str(run), "--from", "best"]), capsys)
    assert line.endswith(f"--resume {run}: no best.pt in that folder to resume from")


# ------------------------------------------------------------------------------------------ two writers
_HOLDER = """
import sys
from fcnlab.runtime.lock import RunLock
RunLock(sys.argv[1]).acquire()
print("locked", flush=True)
sys.stdin.readline()
"""


def test_a_run_held_by_a_live_process_is_refused_with_its_pid(data, finished, tmp_path, capsys):
    """Resuming a live run, and a second training into the same new --out, are refused naming the PID."""
    run = copy_run(finished, tmp_path)
    new = tmp_path / "new"
    new.mkdir()
    env = {**os.environ, "PYTHONPATH": SRC}
    holders = [
        subprocess.Popen(
            [sys.executable, "-c", _HOLDER, str(folder)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=env,
        )
        for folder in (run, new)
    ]
    try:
        for h in holders:
            assert h.stdout.readline().strip() == "locked"
        before = (run / "last.pt").read_bytes()
        for argv, holder, folder, verb in (
            (["classify", "train", "--resume", str(run), "--epochs", "2"], holders[0], run, "resume"),
            (train_argv(data, new), holders[1], new, "train into"),
        ):
            line = one_error_line(main(argv), capsys)
            assert f"{folder}: in use by another fcnlab process (PID {holder.pid}" in line
            assert f"cannot {verb} it while that process runs" in line
            assert "delete" not in line
        assert (run / "last.pt").read_bytes() == before and sorted(p.name for p in new.iterdir()) == [".lock"]
    finally:
        for h in holders:
            h.kill()
            h.wait()
    # the holders died without releasing anything: the lock files are stale, and the run resumes
    assert main(["classify", "train", "--resume", str(run), "--epochs", "2"]) == 0
    assert epochs_of(run / "metrics.csv") == [1, 2]


def test_a_checkpoint_replaced_between_reading_and_locking_is_not_resumed(finished, tmp_path):
    """Another writer that slips in after the checkpoint is read but before the lock is taken: refused."""
    from fcnlab.errors import ConfigError
    from fcnlab.training.fit import fit, resume_config

    run = copy_run(finished, tmp_path)
    cfg, ckpt = resume_config(run, {"epochs": 2})
    shutil.copy(run / "last.pt", tmp_path / "newer.pt")
    os.replace(tmp_path / "newer.pt", run / "last.pt")  # what a second writer's save does
    with pytest.raises(ConfigError, match=r"last.pt: another process wrote it while this one started; run the"):
        fit(cfg, run, ckpt, config_changed=True)
    assert not (run / ".lock").exists() and epochs_of(run / "metrics.csv") == [1]


# ------------------------------------------------------------------------------------------ kill -9 points
_KILLER = """
import os, signal, sys
import fcnlab.checkpoint as checkpoint
import fcnlab.runs as runs
from fcnlab.cli.main import main

at, epoch = os.environ["KILL_AT"], int(os.environ["KILL_EPOCH"])
save, write = checkpoint.save_checkpoint, runs.MetricsLog._write

def save_then_die(path, **fields):
    save(path, **fields)
    if at == "after_checkpoint" and fields.get("epoch") == epoch and fields.get("step_in_epoch") == 0:
        os.kill(os.getpid(), signal.SIGKILL)

def write_then_die(path, columns, rows):
    write(path, columns, rows)
    if at == "between_rows" and path.name == "metrics.csv" and len(rows) == epoch:
        os.kill(os.getpid(), signal.SIGKILL)

checkpoint.save_checkpoint = save_then_die
runs.MetricsLog._write = staticmethod(write_then_die)
sys.exit(main(sys.argv[1:]))
"""


@pytest.mark.slow
@pytest.mark.parametrize("at", ["after_checkpoint", "between_rows"])
def test_a_kill_between_the_checkpoint_and_its_rows_loses_no_row(data, tmp_path, at):
    run = tmp_path / "run"
    env = {**os.environ, "PYTHONPATH": SRC, "KILL_AT": at, "KILL_EPOCH": "1", "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [sys.executable, "-c", _KILLER, *train_argv(data, run, epochs=2)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    ckpt = load_checkpoint(run / "last.pt")
    assert ckpt["epoch"] == 1  # the checkpoint of epoch 1 is on disk ...
    assert epochs_of(run / "timing.csv") == []  # ... but not its timing row (nor, killed earlier, its metrics)
    assert epochs_of(run / "metrics.csv") == ([] if at == "after_checkpoint" else [1])
    saved = ckpt["history"]["metrics"][0]
    assert main(["classify", "train", "--resume", str(run)]) == 0
    assert epochs_of(run / "metrics.csv") == [1, 2] and epochs_of(run / "timing.csv") == [1, 2]
    with open(run / "metrics.csv", newline="") as f:
        row1 = list(csv.DictReader(f))[0]
    assert {k: row1[k] for k in saved} == {k: str(v) for k, v in saved.items()}  # the row the kill took away


# ------------------------------------------------------------------------------------------ full disk
@pytest.fixture()
def small_disk(tmp_path: Path):
    """A real 150 MiB disk (tmpfs): one resnet18 checkpoint (90 MB with SGD momentum) fits, two do not."""
    folder = tmp_path / "disk"
    folder.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs (a real full disk) needs root")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=150m", "tmpfs", str(folder)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    yield folder
    subprocess.run(["umount", "-l", str(folder)], capture_output=True)


@pytest.mark.slow
def test_a_full_disk_during_a_background_checkpoint_stops_training_at_once(data, small_disk, capsys, monkeypatch):
    from fcnlab.checkpoint import BackgroundSaver

    submit = BackgroundSaver.submit

    def submit_and_finish(self, path, fields, then=None):  # the write ends before training goes on
        submit(self, path, fields, then)
        self._thread.join()

    monkeypatch.setattr(BackgroundSaver, "submit", submit_and_finish)
    run = small_disk / "run"
    code = main(train_argv(data, run, epochs=4))
    captured = capsys.readouterr()
    out, err = captured.out, [x for x in captured.err.splitlines() if x.strip()]
    assert code == 2 and len(err) == 1, err
    assert err[0].startswith(f"fcnlab: error: {run / 'last.pt'}: cannot write the checkpoint (the disk is full); ")
    assert "epoch 2/4 step 4/4" in out and "epoch 3/4 step" not in out  # stopped before epoch 3's first step
    ckpt = load_checkpoint(run / "last.pt")  # the previous checkpoint is whole
    assert ckpt["epoch"] == 1
    assert epochs_of(run / "metrics.csv") == [1]
    assert not [p for p in run.iterdir() if p.name.startswith(".last.pt.")]  # no temp file left


# ------------------------------------------------------------------------------------------ eval --out
@pytest.fixture()
def read_only_run(finished, tmp_path: Path):
    """The finished run on a real read-only disk (a tmpfs remounted read-only; root only)."""
    folder = tmp_path / "ro"
    folder.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a read-only tmpfs needs root")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=200m", "tmpfs", str(folder)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    shutil.copytree(finished, folder / "run")
    subprocess.run(["mount", "-o", "remount,ro", str(folder)], check=True)
    yield folder / "run"
    subprocess.run(["umount", "-l", str(folder)], capture_output=True)


EVAL = ["--device", "cpu", "--workers", "0"]


def test_eval_of_a_read_only_run_prints_its_results_then_suggests_out(data, read_only_run, tmp_path, capsys):
    argv = ["classify", "eval", "--ckpt", str(read_only_run), "--data", str(data / "val_50"), *EVAL]
    code = main(argv)
    captured = capsys.readouterr()
    assert "Val Acc: " in captured.out  # the results come first
    err = [x for x in captured.err.splitlines() if x.strip()]
    assert code == 2 and len(err) == 1, err
    assert err[0].startswith(f"fcnlab: error: {read_only_run / 'eval'}")
    assert "(the file system is read-only); the results are printed above: pass --out FOLDER" in err[0]
    out = tmp_path / "elsewhere"
    assert main([*argv, "--out", str(out)]) == 0
    payload = json.loads((out / "eval.json").read_text())
    assert payload["task"] == "classify" and f"Val Acc: {payload['val_acc']:.6f}" in capsys.readouterr().out
    assert (out / "confusion_matrix.png").is_file()


def test_eval_out_is_checked_before_evaluating(data, finished, tmp_path, capsys):
    line = one_error_line(
        main(
            [
                "classify",
                "eval",
                "--ckpt",
                str(finished),
                "--data",
                str(data / "val_50"),
                "--out",
                str(data / "val_50"),
                *EVAL,
            ]
        ),
        capsys,
    )
    assert "is the input folder" in line


@pytest.mark.slow
def test_segment_eval_writes_where_out_says(tmp_path, capsys):
    """``segment eval --out``: eval.json, the IoU table and the plot go there, nothing beside the checkpoint."""
    from fcnlab.checkpoint import save_checkpoint
    from fcnlab.config import from_dict
    from fcnlab.data.synthetic import make_segmentation_data
    from fcnlab.models import build_model

    data = make_segmentation_data(tmp_path / "p2", n_train=1, n_val=2, size=32)
    ckpt_dir = tmp_path / "ckpt"
    ckpt_dir.mkdir()
    cfg = from_dict({"task": "segment", "model": "fcn32s_resnet34", "num_classes": 7, "device": "cpu", "batch_size": 2})
    save_checkpoint(
        ckpt_dir / "model.pt",
        task="segment",
        model_name="fcn32s_resnet34",
        num_classes=7,
        model=build_model("fcn32s_resnet34", 7).state_dict(),
        config=cfg.to_dict(),
        epoch=0,
    )
    out = tmp_path / "results"
    assert (
        main(
            [
                "segment",
                "eval",
                "--ckpt",
                str(ckpt_dir / "model.pt"),
                "--data",
                str(data / "validation"),
                "--out",
                str(out),
                *EVAL,
            ]
        )
        == 0
    )
    assert "mean_iou" in capsys.readouterr().out
    assert sorted(p.name for p in out.iterdir()) == [
        "confusion_matrix.png",
        "eval.json",
        "per_class_iou.md",
        "per_tile.csv",
    ]
    assert json.loads((out / "eval.json").read_text())["task"] == "segment"
    assert sorted(p.name for p in ckpt_dir.iterdir()) == ["model.pt"]
