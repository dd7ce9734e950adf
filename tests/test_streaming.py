"""Streaming evaluation and prediction: files are decoded a batch ahead of the model (memory bounded by the
batch, not the data set), a progress bar shows on terminals, and a bad file read by a worker process is
still one clean DataError naming it."""

from __future__ import annotations

import io
import re
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from fcnlab.checkpoint import save_checkpoint
from fcnlab.cli.main import main
from fcnlab.config import from_dict
from fcnlab.data.mask_codec import write_mask
from fcnlab.data.streaming import ImageFiles, loader
from fcnlab.errors import DataError
from fcnlab.runtime import progress


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_a_bad_file_in_a_worker_process_is_one_clean_error(tmp_path):
    files = []
    for i in range(6):
        files.append(tmp_path / f"0_{i}.png")
        Image.new("RGB", (8, 8), (i, 0, 0)).save(files[-1])
    bad = tmp_path / "1_9.png"
    bad.write_text("not an image")
    files.insert(4, bad)
    with pytest.raises(DataError) as e:
        for _ in loader(ImageFiles(files), batch_size=1, workers=2):
            pass
    assert str(e.value) == (
        f"{bad}: not an image file (Pillow cannot identify it); re-copy the file or remove it from the folder"
    )


class Counting(torch.nn.Module):
    """A stand-in FCN: 7 class scores per pixel; records how many images were decoded when it is called."""

    def __init__(self, reads: list[int]):
        super().__init__()
        self.reads, self.seen, self.ahead = reads, 0, []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.ahead.append(len(self.reads) - self.seen)  # decoded but not yet through the model
        self.seen += x.shape[0]
        return torch.cat([x, -x, x[:, :1]], 1)


@pytest.fixture
def tiles(tmp_path, monkeypatch):
    """40 tiles of 32x32 with masks, a checkpoint, and a model that counts decoded-but-unused images."""
    folder = tmp_path / "tiles"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(40):
        Image.fromarray(rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)).save(folder / f"{i:04d}_sat.jpg")
        write_mask(folder / f"{i:04d}_mask.png", rng.integers(0, 7, (32, 32)).astype(np.uint8))
    cfg = from_dict({"task": "segment", "model": "fcn32s_resnet34", "device": "cpu", "batch_size": 2})
    save_checkpoint(
        tmp_path / "seg.pt", task="segment", model_name="fcn32s_resnet34", num_classes=7, model={}, config=cfg.to_dict()
    )
    reads: list[int] = []
    import fcnlab.data.segmentation as segmentation
    import fcnlab.infer.predictor as inference

    real_load_pair = segmentation.load_pair

    def load_pair(tile, mask):
        reads.append(1)
        return real_load_pair(tile, mask)

    model = Counting(reads)
    monkeypatch.setattr(segmentation, "load_pair", load_pair)
    monkeypatch.setattr(inference, "model_from_checkpoint", lambda ckpt, device: model)
    return folder, tmp_path / "seg.pt", model


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_predict_streams_a_batch_ahead_with_a_progress_bar(tiles, tmp_path, monkeypatch):
    folder, ckpt, model = tiles
    err = Terminal()
    monkeypatch.setattr(sys, "stderr", err)
    monkeypatch.setattr(progress, "QUIET", 0.0)  # 40 tiny tiles may finish within the quiet time
    assert (
        main(
            [
                "segment",
                "predict",
                "--ckpt",
                str(ckpt),
                "--images",
                str(folder),
                "--out",
                str(tmp_path / "out"),
                "--device",
                "cpu",
                "--workers",
                "0",
            ]
        )
        == 0
    )
    assert model.seen == 40 and len(list((tmp_path / "out").glob("*_mask.png"))) == 40
    assert max(model.ahead) <= 1  # one tile decoded at a time: memory does not grow with the folder
    # a bar named for the phase with the folder's count (how far it got drawn depends on tqdm's refresh rate)
    assert re.search(r"predict: .*\d+/40 ", err.getvalue())


def test_eval_memory_is_bounded_by_the_batch_size(tiles, capsys):
    folder, ckpt, model = tiles
    assert (
        main(
            [
                "segment",
                "eval",
                "--ckpt",
                str(ckpt),
                "--data",
                str(folder),
                "--device",
                "cpu",
                "--workers",
                "0",
                "--batch-size",
                "4",
            ]
        )
        == 0
    )
    assert model.seen == 40 and max(model.ahead) <= 4
    assert "mean_iou:" in capsys.readouterr().out
