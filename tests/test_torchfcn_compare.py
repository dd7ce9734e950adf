"""benchmarks/torchfcn_compare.py: one worker process per library, each with its own allocator setting.

torchfcn itself is not installed in CI, so the end-to-end runs use fcnlab's models only; the torchfcn side
goes through the same worker code.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

#: starts worker processes: the full suite's, not the fast lane's (-m "not slow and not realdata")
pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "benchmarks" / "torchfcn_compare.py"


def worker_settings(**changes):
    """What main() hands each worker, for one tiny fcnlab model on the CPU."""
    return {
        "malloc": "as-run",
        "threads": 1,
        "device": "cpu",
        "batch": 1,
        "size": 32,
        "torchfcn": "/nonexistent",
        "fcnlab_path": "engine",
        "clock": "wall",
        **changes,
    }


@pytest.fixture()
def compare_module(monkeypatch):
    monkeypatch.syspath_prepend(str(SCRIPT.parent))  # spawned workers import the module by name too
    import torchfcn_compare

    return torchfcn_compare


def test_each_library_runs_with_its_own_allocator_by_default(compare_module):
    m = compare_module
    assert m.library_of("torchfcn_fcn8s") == "torchfcn" and m.library_of("fcn8s_resnet34") == "fcnlab"
    assert m.allocator_for("torchfcn", "as-run") == "system"
    assert m.allocator_for("fcnlab", "as-run") == "fcnlab"
    assert {m.allocator_for(lib, "system") for lib in ("fcnlab", "torchfcn")} == {"system"}
    assert {m.allocator_for(lib, "fcnlab") for lib in ("fcnlab", "torchfcn")} == {"fcnlab"}
    text = m.describe_allocators({"fcnlab": "fcnlab", "torchfcn": "system"})
    assert "fcnlab process: freed memory kept" in text and "torchfcn process: glibc's defaults" in text
    assert m.describe_allocators({"fcnlab": "system", "torchfcn": "system"}) == "glibc's defaults for both"


def test_ratios_compare_img_per_s_against_the_targets(compare_module):
    models = {
        "fcn8s_resnet34": {"train_img_per_s": 2.0, "infer_img_per_s": 9.0},
        "torchfcn_fcn8s": {"train_img_per_s": 0.25, "infer_img_per_s": 1.0},
    }
    rows = {r["what"]: r for r in compare_module.ratios(models)}
    train = rows["fcn8s_resnet34 training vs torchfcn FCN8s"]
    assert train["ratio"] == 8.0 and train["target"] == 10.0 and train["met"] is False
    assert rows["fcn8s_resnet34 inference vs torchfcn FCN8s"]["met"] is None  # reported, no target


def test_a_worker_error_is_one_line(compare_module):
    with pytest.raises(SystemExit, match=r"^torchfcn_compare: fcnlab worker: RuntimeError: .*no-such-device"):
        compare_module.Worker("fcnlab", ["fcn8s_resnet34"], worker_settings(device="no-such-device"))


def test_a_worker_that_dies_is_one_line(compare_module):
    worker = compare_module.Worker("fcnlab", ["fcn8s_resnet34"], worker_settings())
    try:
        worker.process.kill()  # as the kernel's out-of-memory killer would
        with pytest.raises(SystemExit, match=r"^torchfcn_compare: the fcnlab worker stopped \(exit code -9\)$"):
            worker.ask("seconds", "fcn8s_resnet34", "infer")
    finally:
        worker.close()


def test_missing_torchfcn_names_the_pip_command(tmp_path):
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--torchfcn", str(tmp_path), "--models", "torchfcn_fcn8s,fcn8s_resnet34"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode != 0
    assert f"torchfcn not found in {tmp_path}" in proc.stderr and "pip install --no-deps" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_run_writes_json_and_markdown(tmp_path):
    proc = subprocess.run(
        [
            sys.executable,
            str(SCRIPT),
            "--models",
            "fcn8s_resnet34",
            "--size",
            "32",
            "--rounds",
            "2",
            "--threads",
            "1",
            "--out",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    report = json.loads((tmp_path / "torchfcn_compare.json").read_text())
    row = report["models"]["fcn8s_resnet34"]
    assert row["train_img_per_s"] > 0 and row["infer_img_per_s"] > 0
    assert len(row["train_seconds"]) == 2 and len(row["infer_seconds"]) == 2
    assert row["train_gflop_per_img"] > row["infer_gflop_per_img"] > 0  # backward counted in training
    expected = "fcnlab" if sys.platform == "linux" else "system"
    assert report["malloc"] == {"fcnlab": expected} and report["threads"] == 1
    assert report["ratios"] == []  # no torchfcn model in this run
    assert "| fcn8s_resnet34 |" in (tmp_path / "torchfcn_compare.md").read_text()
