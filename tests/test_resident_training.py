"""Resident data and torch.compile in the training loop, on the CPU.

``resident: true`` on the CPU leaves the host data sets in place (today's path, byte for byte); forced onto
the device path (the fit check patched to say yes, the "device" being the CPU) training and validation give
the same numbers as the host path, so the GPU path differs only in where the arrays live.
"""

from __future__ import annotations

import pytest
import torch

from fcnlab.config import from_dict
from fcnlab.data import prefetch, resident
from fcnlab.data.classification import load_image_set
from fcnlab.data.synthetic import make_classification_data, make_segmentation_data
from fcnlab.errors import ConfigError
from fcnlab.training.fit import fit
from tiny_model import TINY, registered_tiny, tiny_config


@pytest.fixture(autouse=True)
def _tiny_model():
    yield from registered_tiny()


@pytest.fixture(scope="module")
def p1(tmp_path_factory):
    return make_classification_data(tmp_path_factory.mktemp("p1"), num_classes=5, train_per_class=8, val_per_class=2)


@pytest.fixture(scope="module")
def p2(tmp_path_factory):
    return make_segmentation_data(tmp_path_factory.mktemp("p2"), n_train=4, n_val=2, size=64)


def p2_config(p2, **kw):
    return from_dict(
        {
            "task": "segment",
            "model": "fcn8s_resnet34",
            "data": str(p2 / "train"),
            "val": str(p2 / "validation"),
            "epochs": 1,
            "batch_size": 2,
            "image_size": 32,
            "device": "cpu",
            "seed": 3,
            "snapshot_epochs": [1],
            "snapshot_tiles": 1,
            **kw,
        }
    )


def force_resident(monkeypatch) -> list:
    """Make the fit check say yes on the CPU, so the resident path runs here; returns what was made resident."""
    made = []
    real = resident.ResidentData.upload.__func__

    def upload(cls, data, device):
        made.append(type(data).__name__)
        return real(cls, data, device)

    monkeypatch.setattr(resident, "fits", lambda size, device, *a, **k: (True, f"{size} bytes resident (test)"))
    monkeypatch.setattr(resident.ResidentData, "upload", classmethod(upload))
    return made


def test_resident_on_the_cpu_keeps_todays_path(p1, tmp_path, capsys):
    fit(tiny_config(p1), tmp_path / "host")
    fit(tiny_config(p1, resident=True), tmp_path / "res")
    assert "data stays in host memory" in capsys.readouterr().out
    assert (tmp_path / "host" / "metrics.csv").read_bytes() == (tmp_path / "res" / "metrics.csv").read_bytes()


def test_the_resident_path_trains_and_validates_like_the_host_path(p1, tmp_path, monkeypatch):
    fit(tiny_config(p1), tmp_path / "host")
    made = force_resident(monkeypatch)
    fit(tiny_config(p1, resident=True), tmp_path / "res")
    assert made == ["ImageSet", "ImageSet"]  # training and validation sets
    assert (tmp_path / "host" / "metrics.csv").read_bytes() == (tmp_path / "res" / "metrics.csv").read_bytes()


@pytest.mark.slow
def test_segmentation_with_resident_tiles_and_snapshots(p2, tmp_path, monkeypatch):
    fit(p2_config(p2), tmp_path / "host")
    made = force_resident(monkeypatch)
    fit(p2_config(p2, resident=True), tmp_path / "res")
    assert made == ["TileSet", "TileSet"]
    assert (tmp_path / "host" / "metrics.csv").read_bytes() == (tmp_path / "res" / "metrics.csv").read_bytes()
    assert (tmp_path / "res" / "snapshots" / "epoch_001.png").is_file()


def test_prefetcher_indexes_resident_data_in_place(p1):
    data = load_image_set(p1 / "train_50")
    res = resident.ResidentData.upload(data, torch.device("cpu"))
    batches = list(torch.randperm(len(data)).split(7))
    for (xh, yh), (xr, yr) in zip(
        prefetch.Prefetcher(data, batches, pin=False), prefetch.Prefetcher(res, batches, pin=False), strict=True
    ):
        assert torch.equal(xh, xr) and torch.equal(yh, yr)


def test_compile_mode_is_checked():
    assert from_dict({"compile_mode": "reduce-overhead"}).compile_mode == "reduce-overhead"
    with pytest.raises(ConfigError, match="compile_mode"):
        from_dict({"compile_mode": "fastest"})


@pytest.mark.slow
def test_compiled_training_runs_on_the_cpu(p1, tmp_path, capsys):
    """``--compile true`` compiles the step with Inductor's C++ backend on the CPU: 2 steps of a tiny model."""
    summary = fit(tiny_config(p1, compile=True, epochs=1, batch_size=20), tmp_path / "run")
    assert summary["epochs"] == 1 and 0.0 <= summary["val_acc"] <= 1.0
    rows = (tmp_path / "run" / "metrics.csv").read_text().splitlines()
    assert len(rows) == 2 and "nan" not in rows[1]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device (run it on a machine with a GPU)")
def test_a_resident_cuda_epoch_adds_no_host_sync_per_step(p1, tmp_path):
    """On a GPU: 5 steps of a resident epoch wait for the device no more often than 2 steps do."""
    import warnings

    from fcnlab.models import build_model
    from fcnlab.runtime.distributed import DistInfo
    from fcnlab.tasks import make_task
    from fcnlab.training.loop import train_one_epoch
    from fcnlab.training.state import build_state, fresh_accum

    device = torch.device("cuda")
    counts = {}
    for limit in (16, 40):  # 2 and 5 steps of 8 images
        cfg = tiny_config(p1, device="cuda", resident=True, log_every=1000, limit=limit)
        task = make_task(cfg)
        data, note = resident.make_resident(task.load_train(), device)
        assert resident.is_resident(data), note
        state = build_state(cfg, task, tmp_path, build_model(TINY, 5).to(device), device, DistInfo(), data, data)
        train_one_epoch(state, 0)  # warm-up: cuDNN autotuning, the allocator's first blocks
        state.step_in_epoch, state.epoch_accum = 0, fresh_accum()
        torch.cuda.synchronize()
        torch.cuda.set_sync_debug_mode("warn")
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                train_one_epoch(state, 1)
        finally:
            torch.cuda.set_sync_debug_mode(0)
        counts[limit] = sum("synchroniz" in str(w.message) for w in caught)
    assert counts[40] == counts[16], counts
