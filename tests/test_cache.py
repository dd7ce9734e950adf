"""Decoded-data cache: memory vs memory-mapped disk cache, keyed by the files; a changed file rebuilds it."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from fcnlab.data import cache
from fcnlab.data.cache import load_or_build, source_key
from fcnlab.data.classification import load_image_set
from fcnlab.data.images import read_rgb


@pytest.fixture()
def cache_dir(tmp_path, monkeypatch) -> Path:
    folder = tmp_path / "cache"
    monkeypatch.setenv("FCNLAB_CACHE", str(folder))
    return folder


def write_images(folder: Path, n: int = 4, size: int = 8, seed: int = 0) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    paths = []
    for i in range(n):
        path = folder / f"{i % 2}_{i}.png"
        Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(path)
        paths.append(path)
    return paths


class CountingDecoder:
    """decode(i) for load_or_build that reads the real file and counts its calls."""

    def __init__(self, files: list[Path]):
        self.files, self.calls = files, 0

    def __call__(self, i: int) -> dict[str, np.ndarray]:
        self.calls += 1
        return {"images": read_rgb(self.files[i]).transpose(2, 0, 1)}


def build(files: list[Path], mode: str, decoder: CountingDecoder | None = None) -> dict[str, np.ndarray]:
    decoder = decoder or CountingDecoder(files)
    return load_or_build("test", files, {"images": (len(files), 3, 8, 8)}, decoder, mode=mode)


def touch_later(path: Path) -> None:
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))


def test_disk_cache_is_memory_mapped_and_reused_without_decoding(tmp_path, cache_dir):
    files = write_images(tmp_path / "imgs")
    first = CountingDecoder(files)
    arrays = build(files, "disk", first)
    assert first.calls == len(files)
    assert isinstance(arrays["images"], np.memmap)
    for i, f in enumerate(files):
        assert np.array_equal(arrays["images"][i], read_rgb(f).transpose(2, 0, 1))
    folders = list(cache_dir.iterdir())
    assert len(folders) == 1 and (folders[0] / "meta.json").is_file()
    again = CountingDecoder(files)
    reused = build(files, "disk", again)
    assert again.calls == 0  # decoded once, never again
    assert np.array_equal(reused["images"], arrays["images"])
    # auto mode picks the existing disk cache too
    auto = CountingDecoder(files)
    assert isinstance(build(files, "auto", auto)["images"], np.memmap) and auto.calls == 0


def test_a_changed_file_rebuilds_the_cache(tmp_path, cache_dir):
    files = write_images(tmp_path / "imgs")
    old = np.array(build(files, "disk")["images"])
    Image.fromarray(np.full((8, 8, 3), 7, dtype=np.uint8)).save(files[2])  # same name, new pixels
    touch_later(files[2])
    decoder = CountingDecoder(files)
    new = build(files, "disk", decoder)
    assert decoder.calls == len(files)  # rebuilt
    assert np.all(new["images"][2] == 7) and not np.array_equal(new["images"][2], old[2])
    assert np.array_equal(new["images"][0], old[0])


def test_key_follows_names_sizes_mtimes_and_file_set(tmp_path):
    files = write_images(tmp_path / "imgs")
    key = source_key("p1", files)
    assert source_key("p1", files) == key
    assert source_key("p2", files) != key  # the kind is part of the key
    assert source_key("p1", files[:-1]) != key  # a removed file
    extra = write_images(tmp_path / "more", n=1, seed=5)
    assert source_key("p1", files + extra) != key  # an added file
    touch_later(files[0])
    assert source_key("p1", files) != key  # a newer modification time
    os.rename(files[1], tmp_path / "imgs" / "renamed.png")
    assert source_key("p1", [files[0], tmp_path / "imgs" / "renamed.png", *files[2:]]) != key


def test_memory_and_off_modes_never_touch_the_disk(tmp_path, cache_dir):
    files = write_images(tmp_path / "imgs")
    for mode in ("memory", "off", "auto"):
        arrays = build(files, mode)
        assert not isinstance(arrays["images"], np.memmap)
        assert np.array_equal(arrays["images"][1], read_rgb(files[1]).transpose(2, 0, 1))
    assert not cache_dir.exists()


def test_auto_mode_uses_disk_above_the_memory_limit(tmp_path, cache_dir, monkeypatch):
    files = write_images(tmp_path / "imgs")
    monkeypatch.setattr(cache, "MEMORY_LIMIT_BYTES", 100)  # 4 x 3 x 8 x 8 bytes is above it
    assert isinstance(build(files, "auto")["images"], np.memmap)


def test_failed_build_leaves_no_half_cache(tmp_path, cache_dir):
    files = write_images(tmp_path / "imgs")

    def broken(i: int) -> dict[str, np.ndarray]:
        if i == 2:
            raise ValueError("bad file")
        return {"images": read_rgb(files[i]).transpose(2, 0, 1)}

    with pytest.raises(ValueError, match="bad file"):
        load_or_build("test", files, {"images": (len(files), 3, 8, 8)}, broken, mode="disk")
    assert not cache_dir.exists() or not any(cache_dir.iterdir())
    assert isinstance(build(files, "disk")["images"], np.memmap)  # the next build works


def test_image_set_from_the_disk_cache_sees_a_changed_image(tmp_path, cache_dir):
    files = write_images(tmp_path / "p1", n=4)
    first = load_image_set(tmp_path / "p1", cache="disk")
    assert isinstance(first.images, np.memmap)
    x, y = first.batch(torch.tensor([3, 0]))
    assert x.shape == (2, 3, 8, 8) and y.tolist() == [1, 0]
    Image.fromarray(np.zeros((8, 8, 3), dtype=np.uint8)).save(files[3])
    touch_later(files[3])
    second = load_image_set(tmp_path / "p1", cache="disk")
    assert np.all(second.images[3] == 0) and not np.array_equal(first.images[3], second.images[3])


def test_a_cache_folder_that_cannot_be_made_is_one_clear_error(tmp_path, monkeypatch):
    from fcnlab.errors import ConfigError

    blocker = tmp_path / "file.txt"
    blocker.write_text("mine")
    monkeypatch.setenv("FCNLAB_CACHE", str(blocker / "cache"))
    files = write_images(tmp_path / "imgs")
    with pytest.raises(
        ConfigError,
        match=r"^FCNLAB_CACHE .*file\.txt/cache: cannot create the folder \(Not a "
        r"directory\); choose another FCNLAB_CACHE$",
    ):
        build(files, "disk")
    assert blocker.read_text() == "mine"
    assert build(files, "memory")["images"].shape == (4, 3, 8, 8)  # memory mode never needs the folder
