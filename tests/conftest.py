"""Shared pytest fixtures: locating the real course data and making tiny synthetic data sets."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def data_root() -> Path:
    """Folder holding ``dlcv/``: ``$FCNLAB_DATA`` or ``<repo>/../shared/data``."""
    return Path(os.environ.get("FCNLAB_DATA", REPO.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def dlcv_root() -> Path:
    """The real ``dlcv`` folder. Fails (never skips) when it is missing: CI must run real-data tests."""
    root = data_root() / "dlcv"
    if not (root / "p1_data").is_dir() or not (root / "p2_data").is_dir():
        pytest.fail(f"real course data not found at {root}; set FCNLAB_DATA to the folder holding dlcv/")
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
