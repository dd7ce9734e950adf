"""Training runs shared by a test module (module-scoped fixtures), set up as the autouse fixture sets up a test."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from fcnlab.cli.main import main


def train_once(argv: list[str], cache: Path) -> int:
    """``fcnlab`` in-process with one torch thread and a private decoded-data cache; returns the exit code.

    Module-scoped fixtures run outside the per-test fixture in conftest.py, so they set both themselves.
    """
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with pytest.MonkeyPatch.context() as mp:
            mp.setenv("FCNLAB_CACHE", str(cache))
            return main(argv)
    finally:
        torch.set_num_threads(previous)
