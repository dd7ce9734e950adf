"""Shared pytest fixtures: locating the real course data and making tiny synthetic data sets."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
#: Modules shared by test files (tiny_model, train_once, report_runs, course_reference), imported by name:
#: ``from train_once import train_once``.
HELPERS = Path(__file__).resolve().parent / "helpers"
if str(HELPERS) not in sys.path:
    sys.path.insert(0, str(HELPERS))


def data_root() -> Path:
    """Folder holding ``dlcv/``: ``$FCNLAB_DATA`` or ``<repo>/../shared/data``."""
    return Path(os.environ.get("FCNLAB_DATA", REPO.parent / "shared" / "data"))


def data_required() -> bool:
    """``FCNLAB_REQUIRE_DATA=1`` (set by ``.ci/run``): a missing course data set fails the real-data tests."""
    return os.environ.get("FCNLAB_REQUIRE_DATA", "").strip().lower() in ("1", "true", "yes", "on")


@pytest.fixture(scope="session")
def dlcv_root() -> Path:
    """The real ``dlcv`` folder. Missing: the test is skipped with the reason, or fails when data is required."""
    root = data_root() / "dlcv"
    if not (root / "p1_data").is_dir() or not (root / "p2_data").is_dir():
        why = (
            f"real course data not found at {root} (expected dlcv/p1_data and dlcv/p2_data); set "
            f"FCNLAB_DATA to the folder holding dlcv/ (README: 'Getting the course data')"
        )
        if data_required():
            pytest.fail(why + "; FCNLAB_REQUIRE_DATA is set, so real-data tests must run")
        pytest.skip(why)
    return root


@pytest.fixture(autouse=True)
def _private_cache_one_thread(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """Every test: a private decoded-data cache (never ~/.cache) and one torch thread.

    On a busy 2-core machine two torch threads were several times slower than one; subprocesses get
    ``OMP_NUM_THREADS=1`` for the same reason.
    """
    import torch

    monkeypatch.setenv("FCNLAB_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
