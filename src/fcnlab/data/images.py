"""Decode image files into uint8 arrays with one clear error per bad file.

Every reader in fcnlab goes through :func:`read_rgb` or :func:`read_raw_rgb` so that a missing,
empty, truncated or non-image file is reported as a :class:`~fcnlab.errors.DataError` that names
the file, never as a traceback from inside Pillow.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from fcnlab.errors import DataError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")

# Satellite originals are up to 10000x10000 (100 Mpx); allow that, still refuse absurd bombs.
Image.MAX_IMAGE_PIXELS = 400_000_000


def list_images(folder: str | Path, what: str = "images") -> list[Path]:
    """Return the image files of ``folder`` sorted by name; raise if it is missing or has none.

    Broken links with an image suffix are listed too, so that reading them reports the file instead of
    silently leaving it out.
    """
    folder = Path(folder)
    if not folder.exists():
        raise DataError(f"{folder}: folder does not exist")
    if not folder.is_dir():
        raise DataError(f"{folder}: is not a folder; give the folder that holds the {what}")
    try:
        entries = list(folder.iterdir())
    except PermissionError:
        raise DataError(f"{folder}: cannot list the folder (permission denied); fix its permissions") from None
    files = sorted(p for p in entries
                   if p.suffix.lower() in IMAGE_SUFFIXES and (p.is_file() or p.is_symlink()))
    if not files:
        raise DataError(f"{folder}: folder holds no {what} (.png/.jpg files); give the folder that holds them")
    return files


_FIX = "re-copy the file or remove it from the folder"


@contextmanager
def _reading(path: Path) -> Iterator[None]:
    """Run the Pillow/OS calls of the block on ``path``; every failure becomes one DataError naming the file.

    Checks first that the file is not empty. Inside the block, Pillow's decompression-bomb warning is an
    error, so reading the header (:func:`image_size`) and decoding (:func:`read_rgb`) refuse the same files
    with the same message.
    """
    try:
        if path.stat().st_size == 0:
            raise DataError(f"{path}: file is empty (0 bytes); {_FIX}")
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            yield
    except DataError:
        raise
    except FileNotFoundError:
        raise DataError(f"{path}: file does not exist (moved, or a broken link); {_FIX}") from None
    except PermissionError:
        raise DataError(f"{path}: cannot read file (permission denied); fix its permissions (chmod a+r) or "
                        f"remove it from the folder") from None
    except IsADirectoryError:
        raise DataError(f"{path}: is a folder, not an image file; rename or move it") from None
    except UnidentifiedImageError:
        raise DataError(f"{path}: not an image file (Pillow cannot identify it); {_FIX}") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise DataError(f"{path}: image too large to decode safely ({e}); cut it into smaller images") from None
    except MemoryError:
        raise DataError(f"{path}: not enough memory to decode this image; cut it into smaller images") from None
    except OSError as e:
        if e.errno is not None:  # the operating system failed to read it (EIO, ...), not Pillow to parse it
            raise DataError(f"{path}: cannot read file ({e.strerror or e}); {_FIX}") from None
        raise DataError(f"{path}: corrupt or truncated image ({_first_line(e)}); {_FIX}") from None
    except Exception as e:  # SyntaxError, ValueError, zlib/struct errors of damaged files
        raise DataError(f"{path}: corrupt or truncated image ({_first_line(e)}); {_FIX}") from None


def _first_line(e: BaseException) -> str:
    """The first line of an exception's message, or its type name when the message is empty."""
    return str(e).splitlines()[0] if str(e) else type(e).__name__


def _open(path: Path) -> Image.Image:
    """Open and fully decode ``path``; every failure becomes one DataError naming the file and the fix."""
    with _reading(path):
        img = Image.open(path)
        img.load()
    return img


def to_rgb(img: Image.Image) -> Image.Image:
    """Convert grayscale, RGBA, palette and 16-bit images to 8-bit RGB.

    16-bit (and 32-bit integer) grayscale keeps its 8 high bits when it uses more than 8 bits;
    RGBA and transparent palette images drop the alpha channel (16-bit RGB/RGBA PNGs already open as
    8-bit RGB/RGBA in Pillow).
    """
    if img.mode == "RGB":
        return img
    if img.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        arr = np.clip(np.asarray(img), 0, 65535).astype(np.uint32)
        arr = (arr >> 8) if arr.max() > 255 else arr
        return Image.fromarray(arr.astype(np.uint8), mode="L").convert("RGB")
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        return img.convert("RGBA").convert("RGB")
    return img.convert("RGB")


def read_rgb(path: str | Path) -> np.ndarray:
    """Read an image as an ``(H, W, 3)`` uint8 RGB array (any mode converted)."""
    path = Path(path)
    img = _open(path)
    try:
        return np.asarray(to_rgb(img), dtype=np.uint8)
    except Exception as e:  # an exotic mode Pillow cannot convert
        raise DataError(f"{path}: cannot convert image mode {img.mode} to RGB ({e}); save it as an RGB "
                        f"PNG or JPEG") from None


def image_size(path: str | Path) -> tuple[int, int]:
    """Return ``(width, height)`` reading only the header; raise a DataError naming bad files."""
    path = Path(path)
    with _reading(path), Image.open(path) as img:
        return img.size
