"""Land-cover mask codec: RGB colour masks <-> class ids, exactly as the course's evaluator reads them.

Each channel is thresholded at 128 and the three bits form a code ``4R + 2G + B`` (0-7); a lookup
table of 8 entries maps codes to the 7 classes. Pure red (code 4) is not a class colour, yet 12 real
masks hold a few red pixels: like the course's 2020 evaluator, red counts as *unknown* (6), and
:class:`OffPaletteReport` tells the user once which files hold such pixels.

Masks must be lossless: a JPEG-compressed mask has blurred class borders and ringing, so thresholding
it silently mislabels pixels. A mask whose share of pixels with a channel other than exactly 0 or 255
exceeds :data:`LOSSY_SHARE` (0.1 %), or any mask stored as ``.jpg``, is refused with a
:class:`~fcnlab.errors.DataError` naming the file. None of the 2,057 real masks holds a single such
pixel (red is (255, 0, 0), which is on the 0/255 grid); JPEG copies of them hold 0.4-90 % (quality
75-95), except nearly single-coloured tiles, which JPEG keeps almost exact (and which thresholding
then decodes almost exactly too).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from fcnlab.data.images import read_rgb
from fcnlab.errors import DataError
from fcnlab.runtime.files import atomic_save

CLASS_NAMES = ("urban", "agriculture", "rangeland", "forest", "water", "barren", "unknown")
PALETTE = np.array(
    [
        [0, 255, 255],  # 0 urban (cyan)
        [255, 255, 0],  # 1 agriculture (yellow)
        [255, 0, 255],  # 2 rangeland (purple)
        [0, 255, 0],  # 3 forest (green)
        [0, 0, 255],  # 4 water (blue)
        [255, 255, 255],  # 5 barren (white)
        [0, 0, 0],  # 6 unknown (black)
    ],
    dtype=np.uint8,
)
PALETTE.setflags(write=False)
NUM_CLASSES = 7
UNKNOWN = 6
SCORED_CLASSES = 6
RED_CODE = 4
"""Code ``4R + 2G + B`` of pure red, which is not a class colour and counts as unknown."""

CODE_TO_CLASS = np.array([6, 4, 3, 0, 6, 2, 1, 5], dtype=np.uint8)
"""Class id of each code ``4R + 2G + B`` (0 black, 1 blue, 2 green, 3 cyan, 4 red, 5 purple, 6 yellow, 7 white)."""
CODE_TO_CLASS.setflags(write=False)

LOSSY_SHARE = 0.001
"""Largest share of pixels with a channel other than 0 or 255 that a mask may hold (0.1 %)."""

LOSSY_SUFFIXES = (".jpg", ".jpeg")


def count_off_palette(rgb: np.ndarray) -> int:
    """Number of pixels of an ``(H, W, 3)`` uint8 array with a channel other than exactly 0 or 255."""
    # v + 1 wraps 255 to 0, so only 0 and 255 map to {0, 1}: one vectorised pass per test.
    off = (rgb + np.uint8(1)) > 1
    if not off.any():  # fast path: every channel is 0 or 255
        return 0
    return int(np.count_nonzero(off[..., 0] | off[..., 1] | off[..., 2]))


def _lossy_message(source: str, rgb: np.ndarray, n_off: int) -> str:
    share = 100.0 * n_off / max(1, rgb.shape[0] * rgb.shape[1])
    if n_off and int(rgb.max()) < NUM_CLASSES:
        return (
            f"{source}: looks like a class-index image (values 0-{NUM_CLASSES - 1}), not an RGB colour "
            f"mask; write masks with fcnlab.data.mask_codec.write_mask"
        )
    return f"{source}: masks must be lossless palette PNGs; {share:.1f}% of pixels are off-palette (JPEG-compressed?)"


def check_lossless(rgb: np.ndarray, source: str | Path = "mask") -> None:
    """Raise a DataError naming ``source`` if more than :data:`LOSSY_SHARE` of the pixels are off-palette."""
    n_off = count_off_palette(rgb)
    if n_off > LOSSY_SHARE * rgb.shape[0] * rgb.shape[1]:
        raise DataError(_lossy_message(str(source), rgb, n_off))


def _check_rgb_array(rgb: np.ndarray) -> None:
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise ValueError(f"expected an (H, W, 3) uint8 RGB mask, got shape {rgb.shape} dtype {rgb.dtype}")


def rgb_to_codes(rgb: np.ndarray) -> np.ndarray:
    """Return the ``(H, W)`` uint8 codes ``4R + 2G + B`` (0-7) of the channels thresholded at 128."""
    _check_rgb_array(rgb)
    bits = rgb >> 7  # 1 where the channel is >= 128
    return (bits[..., 0] << 2) | (bits[..., 1] << 1) | bits[..., 2]


def rgb_to_class(rgb: np.ndarray, *, source: str | Path = "mask") -> tuple[np.ndarray, int]:
    """Map an ``(H, W, 3)`` uint8 colour mask to ``(H, W)`` uint8 class ids and its number of red pixels.

    Red (off-palette, code 4) pixels become unknown (6), as in the course's evaluator. A lossy
    (JPEG-like) mask raises a DataError naming ``source``.
    """
    _check_rgb_array(rgb)
    check_lossless(rgb, source)
    codes = rgb_to_codes(rgb)
    return CODE_TO_CLASS[codes], int(np.count_nonzero(codes == RED_CODE))


def class_to_rgb(ids: np.ndarray) -> np.ndarray:
    """Map class ids (any integer array, usually ``(H, W)``) to uint8 palette colours (``(..., 3)``)."""
    ids = np.asarray(ids)
    if not np.issubdtype(ids.dtype, np.integer):
        raise ValueError(f"class ids must be integers, got dtype {ids.dtype}")
    if ids.size and (ids.min() < 0 or ids.max() >= NUM_CLASSES):
        bad = ids[(ids < 0) | (ids >= NUM_CLASSES)].flat[0]
        raise ValueError(f"class id {bad} is outside 0-{NUM_CLASSES - 1}")
    return PALETTE[ids]


def read_mask_rgb(path: str | Path) -> np.ndarray:
    """Read a mask file as ``(H, W, 3)`` uint8 RGB, refusing JPEG files and lossy content (DataError)."""
    path = Path(path)
    rgb = read_rgb(path)
    if path.suffix.lower() in LOSSY_SUFFIXES:
        raise DataError(_lossy_message(str(path), rgb, count_off_palette(rgb)))
    check_lossless(rgb, path)
    return rgb


def read_mask_codes(path: str | Path) -> np.ndarray:
    """Read a mask file as ``(H, W)`` uint8 codes ``4R + 2G + B``; map them with :data:`CODE_TO_CLASS`."""
    return rgb_to_codes(read_mask_rgb(path))


def read_mask(path: str | Path) -> tuple[np.ndarray, int]:
    """Read a mask file (RGB, palette, grey or RGBA PNG) as ``(H, W)`` uint8 class ids and its red-pixel count."""
    codes = read_mask_codes(path)
    return CODE_TO_CLASS[codes], int(np.count_nonzero(codes == RED_CODE))


def write_mask(path: str | Path, ids: np.ndarray) -> None:
    """Write ``(H, W)`` class ids as an RGB PNG in the course's colours, atomically."""
    path = Path(path)
    if path.suffix.lower() != ".png":
        raise DataError(f"{path}: masks must be written as .png (lossless); JPEG would corrupt class borders")
    ids = np.asarray(ids)
    if ids.ndim != 2:
        raise ValueError(f"expected (H, W) class ids, got shape {ids.shape}")
    image = Image.fromarray(class_to_rgb(ids), mode="RGB")
    atomic_save(path, lambda tmp: image.save(tmp, format="PNG"))


@dataclass
class OffPaletteReport:
    """Collects the masks that hold off-palette (red) pixels, to report them once for a whole data set."""

    entries: list[tuple[str, int]] = field(default_factory=list)

    def add(self, name: str | Path, n_pixels: int) -> None:
        """Record ``n_pixels`` off-palette pixels in file ``name`` (zero counts are ignored)."""
        if n_pixels:
            self.entries.append((str(name), int(n_pixels)))

    @property
    def total(self) -> int:
        """Total number of off-palette pixels recorded."""
        return sum(n for _, n in self.entries)

    def summary(self, limit: int = 5) -> str | None:
        """One line for the whole data set, or None when no mask held off-palette pixels."""
        if not self.entries:
            return None
        shown = ", ".join(f"{name} ({n})" for name, n in self.entries[:limit])
        more = ", ..." if len(self.entries) > limit else ""
        masks = "mask holds" if len(self.entries) == 1 else "masks hold"
        pixels = "pixel" if self.total == 1 else "pixels"
        return f"{len(self.entries)} {masks} {self.total} off-palette (red) {pixels}, counted as unknown: {shown}{more}"
