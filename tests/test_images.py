"""``read_rgb`` and ``image_size`` refuse bad files with the same one-line DataError naming the file."""

from __future__ import annotations

import errno
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from fcnlab.data import images
from fcnlab.data.images import image_size, read_rgb
from fcnlab.errors import DataError


def _png(path: Path, h: int = 120, w: int = 200) -> Path:
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (h, w, 3), dtype=np.uint8)).save(path)
    return path


def _message(fn, path: Path) -> str:
    with pytest.raises(DataError) as e:
        fn(path)
    message = str(e.value)
    assert "\n" not in message and message.startswith(f"{path}: ")
    return message


def _empty(tmp_path: Path) -> Path:
    (tmp_path / "empty.png").write_bytes(b"")
    return tmp_path / "empty.png"


def _text(tmp_path: Path) -> Path:
    (tmp_path / "text.png").write_text("this is not an image\n")
    return tmp_path / "text.png"


def _folder(tmp_path: Path) -> Path:
    (tmp_path / "dir.png").mkdir()
    return tmp_path / "dir.png"


def _broken_link(tmp_path: Path) -> Path:
    (tmp_path / "link.png").symlink_to(tmp_path / "gone.png")
    return tmp_path / "link.png"


@pytest.mark.parametrize(
    ("make", "expected"),
    [
        (_empty, "file is empty (0 bytes)"),
        (_text, "not an image file"),
        (_folder, "is a folder, not an image file"),
        (_broken_link, "is a broken symbolic link to"),
    ],
)
def test_header_and_decode_give_the_same_message(tmp_path, make, expected):
    path = make(tmp_path)
    decode, header = _message(read_rgb, path), _message(image_size, path)
    assert decode == header and expected in decode


def test_size_of_a_good_file_and_truncation_is_caught_when_decoding(tmp_path):
    path = _png(tmp_path / "ok.png")
    assert image_size(path) == (200, 120) and read_rgb(path).shape == (120, 200, 3)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    assert image_size(path) == (200, 120)  # the header is intact
    assert "corrupt or truncated image" in _message(read_rgb, path)


def test_decompression_bomb_is_refused_by_both(tmp_path, monkeypatch):
    path = _png(tmp_path / "big.png", 40, 40)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # 1600 px: over the limit, under twice it (a warning)
    for fn in (read_rgb, image_size):
        assert "image too large to decode safely" in _message(fn, path)


def test_an_os_read_error_is_not_called_corrupt(tmp_path, monkeypatch):
    path = _png(tmp_path / "disk.png")

    def failing_open(*args, **kwargs):
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(images.Image, "open", failing_open)
    for fn in (read_rgb, image_size):
        message = _message(fn, path)
        assert "cannot read file (Input/output error)" in message and "corrupt" not in message
