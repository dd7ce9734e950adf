"""A tiny registered classifier for tests of the training machinery (not of an architecture)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

from fcnlab.config import TrainConfig, from_dict
from fcnlab.models.registry import list_models, register_model, unregister_model

TINY = "tiny_cnn_for_tests"


def tiny_cnn(num_classes: int, **_: object) -> torch.nn.Module:
    """Conv-BN-ReLU, global pooling and a linear layer: 8 channels, any input size."""
    return torch.nn.Sequential(
        torch.nn.Conv2d(3, 8, 3, padding=1),
        torch.nn.BatchNorm2d(8),
        torch.nn.ReLU(),
        torch.nn.AdaptiveAvgPool2d(1),
        torch.nn.Flatten(),
        torch.nn.Linear(8, num_classes),
    )


def registered_tiny() -> Iterator[str]:
    """Body of an autouse fixture: ``TINY`` registered for the test, removed after it (other tests list the
    registry)."""
    if TINY not in list_models():
        register_model(TINY, "classify", None)(tiny_cnn)
    yield TINY
    unregister_model(TINY)


def tiny_config(p1: Path, **overrides: Any) -> TrainConfig:
    """A 2-epoch CPU run of ``TINY`` on a synthetic P1 folder of 5 classes (``make_classification_data``)."""
    return from_dict(
        {
            "task": "classify",
            "model": TINY,
            "num_classes": 5,
            "data": str(p1 / "train_50"),
            "val": str(p1 / "val_50"),
            "epochs": 2,
            "batch_size": 8,
            "device": "cpu",
            "seed": 3,
            **overrides,
        }
    )
