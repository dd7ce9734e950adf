"""Checkpoints: weights_only round trip, RNG capture, atomic saves, and one clear error per bad file."""

from __future__ import annotations

import argparse
import random
import shutil

import numpy as np
import pytest
import torch

from fcnlab.checkpoint import (
    load_checkpoint,
    model_from_checkpoint,
    remove_stale_temp_files,
    rng_state,
    save_checkpoint,
    set_rng_state,
)
from fcnlab.config import from_dict
from fcnlab.errors import DataError, OutputError
from fcnlab.models import build_model


def small_checkpoint(path, num_classes: int = 3, **extra) -> dict:
    torch.manual_seed(0)
    model = build_model("resnet18", num_classes)
    cfg = from_dict({"model": "resnet18", "num_classes": num_classes})
    fields = dict(
        task="classify",
        model_name="resnet18",
        num_classes=num_classes,
        model=model.state_dict(),
        config=cfg.to_dict(),
        epoch=2,
        metrics={"val_acc": 0.5},
        **extra,
    )
    save_checkpoint(path, **fields)
    return fields


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    folder = tmp_path_factory.mktemp("ckpt")
    fields = small_checkpoint(folder / "last.pt", rng=rng_state(torch.Generator()))
    return folder, fields


def test_round_trip_with_weights_only(saved):
    folder, fields = saved
    raw = torch.load(folder / "last.pt", weights_only=True)
    assert raw["format"] == "fcnlab-checkpoint" and raw["epoch"] == 2 and raw["metrics"] == {"val_acc": 0.5}
    ckpt = load_checkpoint(folder)  # a run folder: its best.pt, else last.pt
    model = model_from_checkpoint(ckpt)
    for key, value in fields["model"].items():
        assert torch.equal(model.state_dict()[key], value)
    assert not model.training


def test_rng_states_restore_every_generator():
    gen = torch.Generator().manual_seed(7)
    state = rng_state(gen)
    first = (torch.rand(3), np.random.rand(3), random.random(), torch.rand(3, generator=gen))
    torch.manual_seed(99), np.random.seed(99), random.seed(99), gen.manual_seed(99)
    set_rng_state(state, gen)
    again = (torch.rand(3), np.random.rand(3), random.random(), torch.rand(3, generator=gen))
    assert torch.equal(first[0], again[0]) and np.array_equal(first[1], again[1])
    assert first[2] == again[2] and torch.equal(first[3], again[3])


def test_a_failed_save_leaves_the_previous_file_and_no_temp_file(saved, tmp_path):
    folder, _ = saved
    target = tmp_path / "last.pt"
    shutil.copy(folder / "last.pt", target)
    before = target.read_bytes()
    with pytest.raises(Exception):  # noqa: B017 - pickling a lambda fails inside torch.save
        save_checkpoint(target, task="classify", model=lambda: None)
    assert target.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.pt"]


def test_a_full_disk_is_one_clear_error_and_keeps_the_previous_file(saved, tmp_path, monkeypatch):
    import fcnlab.checkpoint as checkpoint

    folder, fields = saved
    target = tmp_path / "last.pt"
    shutil.copy(folder / "last.pt", target)
    before = target.read_bytes()

    def full(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(checkpoint.os, "fsync", full)
    with pytest.raises(OutputError, match="cannot write the checkpoint .the disk is full.; free disk space"):
        save_checkpoint(target, **fields)
    assert target.read_bytes() == before and sorted(p.name for p in tmp_path.iterdir()) == ["last.pt"]


def test_stale_temp_files_are_removed(tmp_path):
    for name in (".last.pt.a1b2.pt", ".best.pt.c3.pt", "last.pt", ".notes.txt"):
        (tmp_path / name).write_bytes(b"x")
    removed = remove_stale_temp_files(tmp_path)
    assert sorted(p.name for p in removed) == [".best.pt.c3.pt", ".last.pt.a1b2.pt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == [".notes.txt", "last.pt"]


@pytest.mark.parametrize(
    "case", ["missing", "folder_without", "empty", "text", "truncated", "foreign", "missing_keys", "pickled_object"]
)
def test_bad_checkpoints_give_one_clear_error(saved, tmp_path, case):
    folder, _ = saved
    path = tmp_path / "model.pt"
    expected = {
        "missing": "does not exist",
        "folder_without": "holds no best.pt or last.pt",
        "empty": "empty (0 bytes)",
        "text": "not a readable checkpoint",
        "truncated": "not a readable checkpoint",
        "foreign": "not an fcnlab checkpoint",
        "missing_keys": "checkpoint lacks model_name",
        "pickled_object": "holds a pickled argparse.Namespace object",
    }[case]
    if case == "folder_without":
        path = tmp_path
    elif case == "empty":
        path.write_bytes(b"")
    elif case == "text":
        path.write_text("hello\n")
    elif case == "truncated":
        data = (folder / "last.pt").read_bytes()
        path.write_bytes(data[: len(data) // 2])
    elif case == "foreign":
        torch.save({"state_dict": {}}, path)
    elif case == "missing_keys":
        save_checkpoint(path, task="classify", model={}, config={})
    elif case == "pickled_object":  # the course's reference scripts saved their argparse options this way
        torch.save({"state_dict": {}, "args": argparse.Namespace(lr=0.1)}, path)
    with pytest.raises(DataError) as e:
        load_checkpoint(path)
    assert expected in str(e.value) and str(path) in str(e.value) and "\n" not in str(e.value)
    assert "weights_only" not in str(e.value)  # torch's advice to load with code execution is left out


def test_weights_that_do_not_fit_the_model(saved):
    folder, fields = saved
    ckpt = load_checkpoint(folder / "last.pt")
    ckpt["num_classes"] = 5  # the stored fc layer has 3 outputs
    with pytest.raises(DataError, match="do not fit model resnet18 with 5 classes"):
        model_from_checkpoint(ckpt)


def test_background_saver_snapshots_state_writes_then_calls_back(tmp_path):
    import torch

    from fcnlab.checkpoint import BackgroundSaver

    live = torch.zeros(4)
    order: list[str] = []
    saver = BackgroundSaver()
    saver.submit(
        tmp_path / "last.pt",
        {"model": {"w": live}, "epoch": 1},
        then=lambda: order.append("logged" if (tmp_path / "last.pt").is_file() else "too early"),
    )
    live += 5  # training goes on: the submitted snapshot must not change
    saver.wait()
    assert order == ["logged"]
    saved = torch.load(tmp_path / "last.pt", weights_only=True)
    assert saved["format"] == "fcnlab-checkpoint" and torch.equal(saved["model"]["w"], torch.zeros(4))


def test_background_saver_reraises_a_failed_write(tmp_path):
    import pytest

    from fcnlab.checkpoint import BackgroundSaver

    saver = BackgroundSaver()
    saver.submit(tmp_path / "missing" / "x" / "last.pt", {"epoch": 1}, then=lambda: 1 / 0)
    with pytest.raises(ZeroDivisionError):
        saver.wait()
    saver.wait()  # the error is reported once
