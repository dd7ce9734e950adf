"""Inference helpers: tiled mask prediction equals a one-pass prediction, with windows no larger than the tile."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from fcnlab.config import from_dict
from fcnlab.errors import ConfigError
from fcnlab.infer.predictor import Predictor, load_predictor
from fcnlab.infer.tiling import predict_mask


class Pointwise(torch.nn.Module):
    """Class scores from each pixel alone, so a tiled prediction must equal the whole-image one."""

    def __init__(self):
        super().__init__()
        self.windows: list[tuple[int, int]] = []

    def forward(self, x):
        self.windows.append(tuple(x.shape[-2:]))
        return torch.cat([x, -x, x[:, :1] * 0.5], 1)


def predictor(model: torch.nn.Module) -> Predictor:
    cfg = from_dict({"task": "segment", "model": "fcn8s_resnet34", "device": "cpu"})
    return Predictor(model, cfg, {}, Path("x.pt"), torch.device("cpu"), None)


def test_tiled_prediction_equals_one_pass_and_bounds_the_window():
    rng = np.random.default_rng(0)
    image = rng.integers(0, 255, (700, 530, 3), dtype=np.uint8)
    model = Pointwise()
    whole = predict_mask(predictor(model), image, tile=1024)
    assert model.windows == [(700, 530)]
    model.windows.clear()
    tiled = predict_mask(predictor(model), image, tile=256, margin=64)
    assert np.array_equal(tiled, whole) and tiled.dtype == np.uint8 and tiled.shape == (700, 530)
    assert max(max(w) for w in model.windows) <= 256 and len(model.windows) == 6 * 5  # 128-pixel cores


def test_argmax_ties_pick_the_first_class():
    class Flat(torch.nn.Module):
        def forward(self, x):
            return torch.zeros(x.shape[0], 7, *x.shape[-2:])

    assert (predict_mask(predictor(Flat()), np.zeros((40, 40, 3), np.uint8)) == 0).all()


@pytest.mark.parametrize("tile", [0, 100, 159])
def test_too_small_tiles_are_refused(tile):
    with pytest.raises(ConfigError, match="option --tile: must be at least 160"):
        predict_mask(predictor(Pointwise()), np.zeros((500, 500, 3), np.uint8), tile=tile)


def test_checkpoint_of_the_other_task_is_refused(tmp_path):
    from fcnlab.checkpoint import save_checkpoint

    cfg = from_dict({"task": "classify", "model": "resnet18", "num_classes": 3})
    save_checkpoint(
        tmp_path / "c.pt", task="classify", model_name="resnet18", num_classes=3, model={}, config=cfg.to_dict()
    )
    with pytest.raises(ConfigError, match="checkpoint is a classify model, not segment; use 'fcnlab classify"):
        load_predictor(tmp_path / "c.pt", "cpu", task="segment")
