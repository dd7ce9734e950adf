"""Decode image files into uint8 arrays with one clear error per bad file.

Every reader in fcnlab goes through :func:`read_rgb` or :func:`read_raw_rgb` so that a missing,
empty, truncated or non-image file is reported as a :class:`~fcnlab.errors.DataError` that names
the file, never as a traceback from inside Pillow.
"""

from __future__ import annotations

import errno
import os
import warnings
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from fcnlab.errors import DataError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")

# Satellite originals are up to 10000x10000 (100 Mpx); allow that, still refuse absurd bombs.
Image.MAX_IMAGE_PIXELS = 400_000_000


def link_problem(path: str | Path) -> str | None:
    """Why ``path`` cannot be reached through symbolic links (one line with the fix), or None.

    A link that leads back to itself (directly or through other links) and a link whose target is gone get
    the link's name and the ``ln -sfn`` command that repairs it, instead of the OS's "too many levels of
    symbolic links" or "no such file".
    """
    path = Path(path)
    try:
        os.stat(path)
        return None
    except OSError as e:
        if e.errno == errno.ELOOP:
            return (
                f"{path}: is a symbolic link loop (the link leads back to itself); point it at the real "
                f"target (ln -sfn TARGET {path}) or give the real path"
            )
        if e.errno not in (errno.ENOENT, errno.ENOTDIR):
            return None
    if path.is_symlink():
        return (
            f"{path}: is a broken symbolic link to {os.readlink(path)}, which does not exist; repoint it "
            f"(ln -sfn TARGET {path}) or give the real path"
        )
    return None


def real_path(path: str | Path) -> Path:
    """The path with links resolved as far as they go; never raises on a link loop (``Path.resolve`` does)."""
    return Path(os.path.realpath(path))


def list_images(folder: str | Path, what: str = "images") -> list[Path]:
    """Return the image files of ``folder`` sorted by name; raise if it is missing or has none.

    Broken links with an image suffix are listed too, so that reading them reports the file instead of
    silently leaving it out.
    """
    folder = Path(folder)
    if not folder.exists():
        raise DataError(link_problem(folder) or f"{folder}: folder does not exist")
    if not folder.is_dir():
        raise DataError(f"{folder}: is not a folder; give the folder that holds the {what}")
    try:
        entries = list(folder.iterdir())
    except PermissionError:
        raise DataError(f"{folder}: cannot list the folder (permission denied); fix its permissions") from None
    files = sorted(p for p in entries if p.suffix.lower() in IMAGE_SUFFIXES and (p.is_file() or p.is_symlink()))
    if not files:
        raise DataError(f"{folder}: folder holds no {what} (.png/.jpg files); give the folder that holds them")
    return files


def name_clash(files: Iterable[Path], name_of: Callable[[Path], str]) -> tuple[Path, Path, str] | None:
    """The first two of ``files`` that ``name_of`` maps to one name, with that name; None when all differ."""
    seen: dict[str, Path] = {}
    for f in files:
        name = name_of(f)
        if name in seen:
            return seen[name], f, name
        seen[name] = f
    return None


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
        raise DataError(
            link_problem(path) or f"{path}: file does not exist (moved, or a broken link); {_FIX}"
        ) from None
    except PermissionError:
        raise DataError(
            f"{path}: cannot read file (permission denied); fix its permissions (chmod a+r) or "
            f"remove it from the folder"
        ) from None
    except IsADirectoryError:
        raise DataError(f"{path}: is a folder, not an image file; rename or move it") from None
    except UnidentifiedImageError:
        raise DataError(f"{path}: not an image file (Pillow cannot identify it); {_FIX}") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise DataError(f"{path}: image too large to decode safely ({e}); cut it into smaller images") from None
    except MemoryError:
        raise DataError(f"{path}: not enough memory to decode this image; cut it into smaller images") from None
    except OSError as e:
        if e.errno == errno.ELOOP:
            raise DataError(link_problem(path) or f"{path}: a symbolic link loop; {_FIX}") from None
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
        raise DataError(
            f"{path}: cannot convert image mode {img.mode} to RGB ({e}); save it as an RGB PNG or JPEG"
        ) from None


def image_size(path: str | Path) -> tuple[int, int]:
    """Return ``(width, height)`` reading only the header; raise a DataError naming bad files."""
    path = Path(path)
    with _reading(path), Image.open(path) as img:
        return img.size


def file_stat(path: str | Path) -> os.stat_result:
    """``os.stat`` of a data file; a missing file, a broken or looping link is one DataError with the fix."""
    path = Path(path)
    with _reading(path):
        return path.stat()


class SizeCheck:
    """Collects the decoded sizes that differ from the first file's, then blames the odd files out.

    A data set's first file (by name) is only a guess of its size: when it is the odd one, the others must
    not be blamed. :meth:`fits` records a mismatch (the caller skips that file); :meth:`check`, run after
    every file is decoded, names the first file whose size differs from the size most files share.
    """

    def __init__(self, files: Sequence[Path], first: tuple[int, int], what: str, fix: str):
        self.files, self.first, self.what, self.fix = list(files), first, what, fix
        self.odd: dict[int, tuple[int, int]] = {}

    def fits(self, i: int, hw: tuple[int, int]) -> bool:
        """True when file ``i`` has the first file's ``(height, width)``; records it otherwise."""
        if tuple(hw) == self.first:
            return True
        self.odd[i] = (int(hw[0]), int(hw[1]))
        return False

    def check(self) -> None:
        """Raise one DataError naming the first file of a size other than the most common one."""
        if not self.odd:
            return
        sizes = {i: self.odd.get(i, self.first) for i in range(len(self.files))}
        (h, w), n = Counter(sizes.values()).most_common(1)[0]  # a tie: the first file's size (counted first)
        bad = [i for i in range(len(self.files)) if sizes[i] != (h, w)]
        bh, bw = sizes[bad[0]]
        more = f" (and {len(bad) - 1} more of other sizes)" if len(bad) > 1 else ""
        raise DataError(
            f"{self.files[bad[0]]}: {self.what} is {bw}x{bh}, but {n} of the {len(self.files)} "
            f"{self.what}s are {w}x{h}{more}; {self.fix}"
        )
