"""Decode image files into uint8 arrays with one clear error per bad file.

Every reader in fcnlab goes through :func:`read_rgb` or :func:`read_raw_rgb` so that a missing,
empty, truncated or non-image file is reported as a :class:`~fcnlab.errors.DataError` that names
the file, never as a traceback from inside Pillow.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from fcnlab.errors import DataError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")

# Satellite originals are up to 10000x10000 (100 Mpx); allow that, still refuse absurd bombs.
Image.MAX_IMAGE_PIXELS = 400_000_000


def list_images(folder: str | Path, what: str = "images") -> list[Path]:
    """Return the image files of ``folder`` sorted by name; raise if it is missing or has none."""
    folder = Path(folder)
    if not folder.exists():
        raise DataError(f"{folder}: folder does not exist")
    if not folder.is_dir():
        raise DataError(f"{folder}: is not a folder (expected a folder of {what})")
    files = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise DataError(f"{folder}: folder holds no {what} (.png/.jpg files)")
    return files


def _open(path: Path) -> Image.Image:
    try:
        if path.stat().st_size == 0:
            raise DataError(f"{path}: file is empty (0 bytes)")
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(path)
            img.load()
        return img
    except DataError:
        raise
    except FileNotFoundError as e:
        raise DataError(f"{path}: file does not exist") from e
    except PermissionError as e:
        raise DataError(f"{path}: cannot read file (permission denied)") from e
    except UnidentifiedImageError as e:
        raise DataError(f"{path}: not an image file (Pillow cannot identify it)") from e
    except (OSError, SyntaxError, ValueError) as e:
        raise DataError(f"{path}: corrupt or truncated image ({e})") from e
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise DataError(f"{path}: image too large to decode safely ({e})") from e


def to_rgb(img: Image.Image) -> Image.Image:
    """Convert grayscale, RGBA, palette and 16-bit images to 8-bit RGB."""
    if img.mode == "RGB":
        return img
    if img.mode in ("I;16", "I;16B", "I;16L", "I"):
        arr = np.asarray(img, dtype=np.uint32)
        arr = (arr >> 8) if arr.max() > 255 else arr
        return Image.fromarray(arr.astype(np.uint8), mode="L").convert("RGB")
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        return img.convert("RGBA").convert("RGB")
    return img.convert("RGB")


def read_rgb(path: str | Path) -> np.ndarray:
    """Read an image as an ``(H, W, 3)`` uint8 RGB array (any mode converted)."""
    path = Path(path)
    return np.asarray(to_rgb(_open(path)), dtype=np.uint8)


def image_size(path: str | Path) -> tuple[int, int]:
    """Return ``(width, height)`` reading only the header; raise a DataError naming bad files."""
    path = Path(path)
    try:
        if path.stat().st_size == 0:
            raise DataError(f"{path}: file is empty (0 bytes)")
        with Image.open(path) as img:
            return img.size
    except DataError:
        raise
    except FileNotFoundError as e:
        raise DataError(f"{path}: file does not exist") from e
    except UnidentifiedImageError as e:
        raise DataError(f"{path}: not an image file (Pillow cannot identify it)") from e
    except OSError as e:
        raise DataError(f"{path}: cannot read image ({e})") from e
