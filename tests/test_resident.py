"""Resident data (fcnlab.data.resident): the fit check against free device memory, the fallback to the host
data set, and batches equal to the host path's."""

from __future__ import annotations

import pytest
import torch

from fcnlab.data import resident
from fcnlab.data.classification import load_image_set
from fcnlab.data.segmentation import load_tile_set
from fcnlab.data.synthetic import make_classification_data, make_segmentation_data

GiB = 2**30


@pytest.fixture()
def p1(tmp_path):
    root = make_classification_data(tmp_path / "p1", num_classes=5, train_per_class=4, val_per_class=1)
    return root


@pytest.fixture()
def p2(tmp_path):
    return make_segmentation_data(tmp_path / "p2", n_train=5, n_val=1, size=64)


def fake_cuda_memory(monkeypatch, free: int, total: int) -> list:
    calls = []

    def mem_get_info(device=None):
        calls.append(device)
        return free, total

    monkeypatch.setattr(torch.cuda, "mem_get_info", mem_get_info)
    return calls


def test_the_cpu_keeps_the_host_data_set(p1):
    data = load_image_set(p1 / "train_50")
    out, reason = resident.make_resident(data, torch.device("cpu"))
    assert out is data and not resident.is_resident(out) and "host memory" in reason


def test_fit_check_reads_free_memory_and_keeps_headroom(monkeypatch):
    cuda = torch.device("cuda", 0)
    calls = fake_cuda_memory(monkeypatch, free=100 * GiB, total=140 * GiB)
    ok, reason = resident.fits(2 * GiB, cuda)
    assert ok and calls == [cuda] and "resident on cuda:0" in reason
    # headroom: a quarter of a 140 GiB card is 35 GiB, so 66 GiB of data does not fit into 100 GiB free
    assert resident.fits(64 * GiB, cuda)[0] and not resident.fits(66 * GiB, cuda)[0]
    fake_cuda_memory(monkeypatch, free=5 * GiB, total=16 * GiB)  # small card: the 4 GiB floor applies
    assert resident.fits(int(0.9 * GiB), cuda)[0]
    ok, reason = resident.fits(int(1.1 * GiB), cuda)
    assert not ok and "data stays in host memory" in reason and "5.0 GiB free" in reason


def test_too_little_free_memory_falls_back_to_the_host_path(monkeypatch, p2):
    data = load_tile_set(p2 / "train")
    fake_cuda_memory(monkeypatch, free=resident.nbytes(data) + GiB, total=16 * GiB)
    out, reason = resident.make_resident(data, torch.device("cuda", 0))
    assert out is data and "stays in host memory" in reason
    out, reason = resident.make_resident(data, torch.device("cuda", 0), enabled=False)
    assert out is data and reason == "resident data off"


def test_when_it_fits_the_arrays_are_uploaded(monkeypatch, p2):
    data = load_tile_set(p2 / "train")
    fake_cuda_memory(monkeypatch, free=80 * GiB, total=80 * GiB)
    uploaded = []
    real_upload = resident._upload

    def upload(array, device):  # no GPU here: stand in for the copy and record where it was going
        uploaded.append(device)
        return real_upload(array, torch.device("cpu"))

    monkeypatch.setattr(resident, "_upload", upload)
    out, _ = resident.make_resident(data, torch.device("cuda", 0))
    assert resident.is_resident(out) and uploaded == [torch.device("cuda", 0)] * 2
    assert out.files == data.files and len(out) == len(data)


@pytest.mark.parametrize("cache", ["memory", "disk"])
@pytest.mark.parametrize("chunk", [1, 64 * 2**20])
def test_batches_equal_the_host_path(monkeypatch, p1, p2, cache, chunk):
    monkeypatch.setattr(resident, "_UPLOAD_CHUNK", chunk)  # 1 byte: one sample per copy
    for data in (load_image_set(p1 / "train_50", cache=cache), load_tile_set(p2 / "train", cache=cache)):
        res = resident.ResidentData.upload(data, torch.device("cpu"))
        assert resident.nbytes(data) == res.images.nbytes + res.targets.nbytes
        for index in (torch.tensor([3, 0, 4, 4]), torch.arange(len(data)), torch.tensor([1])):
            x_host, y_host = data.batch(index)
            x_res, y_res = res.batch(index)
            assert x_res.dtype == x_host.dtype == torch.uint8 and y_res.dtype == y_host.dtype == torch.int64
            assert torch.equal(x_res, x_host) and torch.equal(y_res, y_host)


def test_an_epochs_index_goes_up_once_and_keeps_its_batches():
    batches = list(torch.randperm(10).split(3))
    assert resident.device_batches(batches, torch.device("cpu")) is batches
    assert resident.device_batches([], torch.device("cuda", 0)) == []
