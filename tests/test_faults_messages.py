"""Messages blame the right cause: a missing optional package is named with the extra that installs it, and
valid input (a 1x1 image, the default worker count on a one-core machine) reaches the user without a
library warning.

Packages are made missing for real for the import system (``sys.modules[name] = None`` makes ``import name``
raise ImportError); the commands run end to end on the tiny models of tests/data/old_*.pt.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from fcnlab.cli.main import main
from fcnlab.errors import ConfigError
from test_old_checkpoint import DATA, tiny_old_models  # noqa: F401 - an autouse fixture: the old checkpoints' models


def export(out: Path) -> int:
    return main(["export", "--ckpt", str(DATA / "old_classify.pt"), "--format", "onnx", "--out", str(out)])


def test_export_without_onnx_names_the_package_and_the_extra(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "onnx", None)
    out = tmp_path / "model.onnx"
    assert export(out) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert err == [
        "fcnlab: error: --format onnx: needs the optional package onnx, which is not installed; pip "
        "install 'fcnlab[export]' (or use --format torch-export)"
    ]
    assert not out.exists() and not list(tmp_path.iterdir())


def test_export_without_onnxruntime_skips_only_the_check_and_says_why(tmp_path, monkeypatch, capsys):
    pytest.importorskip("onnx")
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    out = tmp_path / "model.onnx"
    assert export(out) == 0
    printed = capsys.readouterr()
    assert (
        "check skipped: the optional package onnxruntime is not installed (pip install 'fcnlab[export]')" in printed.out
    )
    assert out.stat().st_size > 0 and "cannot express" not in printed.out + printed.err


def test_tensorboard_without_its_package_names_the_extra(monkeypatch):
    from fcnlab.training.tensorboard import _summary_writer

    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)
    with pytest.raises(ConfigError, match=r"tensorboard package is not installed; pip install 'fcnlab\[tensorboard\]'"):
        _summary_writer()


@pytest.mark.parametrize("task", ["classify", "segment"])
def test_a_1x1_image_on_a_one_core_machine_predicts_without_a_library_warning(tmp_path, monkeypatch, capfd, task):
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0}, raising=False)  # what torch checks workers by
    folder = tmp_path / "in"
    folder.mkdir()
    for name in ("0_1.png", "0002_sat.jpg"):
        Image.fromarray(np.full((1, 1, 3), 200, dtype=np.uint8)).save(folder / name)
    out = tmp_path / ("pred.csv" if task == "classify" else "masks")
    code = main(
        [
            task,
            "predict",
            "--ckpt",
            str(DATA / f"old_{task}.pt"),
            "--images",
            str(folder),
            "--out",
            str(out),
            "--device",
            "cpu",
        ]
    )  # the default --workers 2
    captured = capfd.readouterr()
    assert code == 0 and captured.err == "", captured.err
    assert "wrote 2 " in captured.out
