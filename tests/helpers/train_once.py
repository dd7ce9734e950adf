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


def segment_train_argv(
    data: Path, run: Path, *extra: str, model: str = "fcn32s_resnet34", epochs: int = 2, image_size: int = 64
) -> list[str]:
    """``segment train`` of a tiny run on the synthetic tiles of ``data`` (``train/``, ``validation/``): 64-px
    crops (``image_size``), batch 2, on the CPU, into ``run``, with ``extra`` options after those."""
    return [
        "segment",
        "train",
        "--data",
        str(data / "train"),
        "--val",
        str(data / "validation"),
        "--out",
        str(run),
        "--model",
        model,
        "--epochs",
        str(epochs),
        "--batch-size",
        "2",
        "--image-size",
        str(image_size),
        "--device",
        "cpu",
        *extra,
    ]


def classify_train_argv(data: Path, run: Path, *extra: str, epochs: int = 2, batch_size: int = 8) -> list[str]:
    """``classify train`` of a tiny resnet18 run on the synthetic 4-class images of ``data`` (``train_50/``,
    ``val_50/``), on the CPU, into ``run``, with ``extra`` options after those."""
    return [
        "classify",
        "train",
        "--model",
        "resnet18",
        "--num-classes",
        "4",
        "--data",
        str(data / "train_50"),
        "--val",
        str(data / "val_50"),
        "--epochs",
        str(epochs),
        "--batch-size",
        str(batch_size),
        "--device",
        "cpu",
        "--out",
        str(run),
        *extra,
    ]
