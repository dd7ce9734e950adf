"""Small synthetic data sets in the exact on-disk formats of the course, for the demo and fast tests.

* :func:`make_classification_data` writes a P1-style folder: ``train_50/{label}_{index}.png``,
  ``val_50/{label}_{index}.png`` (indices continuing after the train ones) and ``val_gt.csv``.
  Each class is one (pattern, colour pair) combination -- ten patterns (stripes in four
  orientations, checkerboard, disc, ring, square, cross, triangle) times five background/foreground
  colour pairs -- drawn with random shifts, scales, colour jitter and pixel noise, so a small CNN
  learns the classes in a couple of CPU epochs while no two images are identical.
* :func:`make_segmentation_data` writes a P2-style folder: ``train/NNNN_sat.jpg`` + ``NNNN_mask.png``
  and ``validation/...``. Each tile is a warped Voronoi map of land-cover regions whose classes are
  drawn with shares close to the real data (agriculture most common, unknown rare); the "satellite"
  image is textured per class (urban grey blocks, agriculture yellow-green stripes, rangeland mottled
  olive, forest dark-green noise, water smooth blue, barren light brown, unknown black) and the mask
  is an RGB PNG in the course palette written by :func:`fcnlab.data.mask_codec.write_mask`.

Everything is deterministic for a given ``seed``: every image has its own random generator seeded
from ``(seed, split, label/tile, index)``, so a file does not change when the set grows. Files are
written with Pillow through :func:`fcnlab.runtime.files.atomic_save`; a folder that already holds files is
refused unless ``overwrite=True``, so real data is never overwritten by accident.
"""

from __future__ import annotations

import csv
import io
from functools import partial
from pathlib import Path

import numpy as np
from PIL import Image

from fcnlab.data.mask_codec import write_mask
from fcnlab.errors import ConfigError, DataError
from fcnlab.runtime.files import atomic_save, atomic_write_text

#: Probability that a region gets each class (ids 0-6), close to the pixel shares of the real p2 train
#: set (agriculture .58, forest .12, urban .11, rangeland .08, barren .08, water .03, unknown ~0).
SEG_CLASS_SHARES = (0.11, 0.56, 0.08, 0.12, 0.04, 0.08, 0.01)

MAX_CLASSES = 100
_N_PATTERNS = 10
# (background, foreground) colour pairs; classes 50-99 swap them.
_COLOUR_PAIRS = (
    ((25, 35, 95), (240, 200, 40)),  # navy / yellow
    ((225, 225, 215), (200, 30, 30)),  # off-white / red
    ((25, 95, 45), (240, 240, 240)),  # dark green / white
    ((95, 30, 115), (40, 210, 220)),  # purple / cyan
    ((230, 135, 35), (20, 20, 20)),  # orange / black
)
_SPLIT_IDS = {"train": 0, "val": 1}


def _prepare_dirs(folders: list[Path], overwrite: bool) -> None:
    """Create ``folders`` after checking them all: refuse any that holds files unless ``overwrite``."""
    for folder in folders:
        if folder.exists() and not folder.is_dir():
            raise DataError(f"{folder}: exists and is not a folder; choose another output folder")
        if folder.is_dir() and any(folder.iterdir()) and not overwrite:
            raise DataError(
                f"{folder}: folder already holds files; choose a new or empty output folder "
                "(synthetic data never overwrites existing data)"
            )
    for folder in folders:
        folder.mkdir(parents=True, exist_ok=True)


def _check_count(name: str, value: int, minimum: int, maximum: int | None = None) -> None:
    """Raise a :class:`ConfigError` naming ``name`` unless ``minimum <= value <= maximum`` (integers)."""
    ok = isinstance(value, (int, np.integer)) and not isinstance(value, bool)
    if not ok or value < minimum or (maximum is not None and value > maximum):
        bound = f"between {minimum} and {maximum}" if maximum is not None else f">= {minimum}"
        raise ConfigError(f"{name} must be an integer {bound}, got {value!r}")


def _save_png(path: Path, array: np.ndarray) -> None:
    """Write an ``(H, W, 3)`` uint8 array as an RGB PNG, atomically."""
    img = Image.fromarray(array, mode="RGB")
    atomic_save(path, lambda tmp: img.save(tmp, format="PNG"))


# ---------------------------------------------------------------------------------------------------
# P1: 50-class images


def _pattern(kind: int, size: int, rng: np.random.Generator) -> np.ndarray:
    """A ``(size, size)`` bool foreground mask for pattern ``kind`` (0-9), randomly shifted and scaled."""
    coords = (np.arange(size, dtype=np.float32) + 0.5) / size * 2.0 - 1.0
    v, u = np.meshgrid(coords, coords, indexing="ij")  # v: rows (down), u: columns (right)
    if kind < 5:  # periodic patterns: random phase = random shift
        freq = rng.uniform(2.5, 3.5)
        phase_u, phase_v = rng.uniform(0, 2 * np.pi, size=2)
        if kind == 0:
            return np.sin(np.pi * freq * v + phase_v) > 0  # horizontal stripes
        if kind == 1:
            return np.sin(np.pi * freq * u + phase_u) > 0  # vertical stripes
        if kind == 2:
            return np.sin(np.pi * freq * (u + v) / np.sqrt(2) + phase_u) > 0  # "\" diagonal stripes
        if kind == 3:
            return np.sin(np.pi * freq * (u - v) / np.sqrt(2) + phase_u) > 0  # "/" diagonal stripes
        return (np.sin(np.pi * freq * u + phase_u) > 0) ^ (np.sin(np.pi * freq * v + phase_v) > 0)
    # shapes: random centre shift and scale
    du, dv = rng.uniform(-0.2, 0.2, size=2)
    scale = rng.uniform(0.8, 1.15)
    u = (u - du) / scale
    v = (v - dv) / scale
    r = np.sqrt(u * u + v * v)
    if kind == 5:
        return r < 0.55  # disc
    if kind == 6:
        return (r > 0.32) & (r < 0.62)  # ring
    if kind == 7:
        return (np.abs(u) < 0.5) & (np.abs(v) < 0.5)  # square
    if kind == 8:
        arm = (np.abs(u) < 0.17) | (np.abs(v) < 0.17)
        return arm & (np.abs(u) < 0.75) & (np.abs(v) < 0.75)  # plus
    return (v < 0.5) & (np.abs(u) < (v + 0.7) * 0.55)  # triangle pointing up


def class_image(label: int, size: int, rng: np.random.Generator) -> np.ndarray:
    """Draw one ``(size, size, 3)`` uint8 image of synthetic class ``label`` (0-99)."""
    _check_count("label", label, 0, MAX_CLASSES - 1)
    kind = label % _N_PATTERNS
    bg, fg = _COLOUR_PAIRS[(label // _N_PATTERNS) % len(_COLOUR_PAIRS)]
    if label >= _N_PATTERNS * len(_COLOUR_PAIRS):
        bg, fg = fg, bg
    jitter = rng.uniform(-20, 20, size=(2, 3))
    bg_c = np.asarray(bg, dtype=np.float32) + jitter[0]
    fg_c = np.asarray(fg, dtype=np.float32) + jitter[1]
    mask = _pattern(kind, size, rng)[..., None]
    img = np.where(mask, fg_c, bg_c) + rng.normal(0.0, 12.0, size=(size, size, 3))
    return np.clip(img, 0, 255).round().astype(np.uint8)


def make_classification_data(
    root: str | Path,
    num_classes: int = 50,
    train_per_class: int = 20,
    val_per_class: int = 4,
    size: int = 32,
    seed: int = 0,
    overwrite: bool = False,
) -> Path:
    """Write a P1-style synthetic classification set under ``root`` and return ``root``.

    Layout: ``root/train_50/{label}_{index}.png`` with indices ``0 .. train_per_class-1``,
    ``root/val_50/{label}_{index}.png`` with the following ``val_per_class`` indices (as the course's
    val indices 450-499 follow its train ones) and ``root/val_gt.csv`` (header ``filename,label``, one
    row per val image, sorted by label then index). Images are ``size`` x ``size`` RGB PNGs.
    ``num_classes`` may be 1-100. Raises :class:`ConfigError` naming a bad count or size, and
    :class:`DataError` if an output folder already holds files (or ``val_gt.csv`` exists) and
    ``overwrite`` is false; nothing is written then.
    """
    _check_count("num_classes", num_classes, 1, MAX_CLASSES)
    _check_count("train_per_class", train_per_class, 1)
    _check_count("val_per_class", val_per_class, 1)
    _check_count("size", size, 8)
    _check_count("seed", seed, 0)
    root = Path(root)
    train_dir, val_dir, gt_path = root / "train_50", root / "val_50", root / "val_gt.csv"
    if gt_path.exists() and not overwrite:
        raise DataError(
            f"{gt_path}: already exists; choose a new or empty output folder "
            "(synthetic data never overwrites existing data)"
        )
    _prepare_dirs([train_dir, val_dir], overwrite)

    rows = io.StringIO()
    writer = csv.writer(rows, lineterminator="\n")
    writer.writerow(["filename", "label"])
    for label in range(num_classes):
        for index in range(train_per_class + val_per_class):
            split = "train" if index < train_per_class else "val"
            rng = np.random.default_rng([seed, _SPLIT_IDS[split], label, index])
            name = f"{label}_{index}.png"
            _save_png((train_dir if split == "train" else val_dir) / name, class_image(label, size, rng))
            if split == "val":
                writer.writerow([name, label])
    atomic_write_text(gt_path, rows.getvalue())
    return root


# ---------------------------------------------------------------------------------------------------
# P2: land-cover tiles


def _smooth_noise(rng: np.random.Generator, size: int, cells: int) -> np.ndarray:
    """``(size, size)`` float32 noise with about ``cells`` blobs per side, zero mean and unit std."""
    cells = int(max(2, min(cells, size)))
    coarse = rng.standard_normal((cells, cells)).astype(np.float32)
    field = np.asarray(Image.fromarray(coarse, mode="F").resize((size, size), Image.Resampling.BICUBIC))
    field = field - field.mean()
    std = float(field.std())
    return field / std if std > 0 else field


def _regions(size: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A domain-warped Voronoi map: ``(owner (size, size) region index, class id of each region)``."""
    n_regions = int(rng.integers(5, 13))
    seeds = rng.uniform(0, size, size=(n_regions, 2)).astype(np.float32)
    classes = rng.choice(len(SEG_CLASS_SHARES), size=n_regions, p=np.asarray(SEG_CLASS_SHARES))
    grid = np.arange(size, dtype=np.float32)
    warp = 0.07 * size
    yy = grid[:, None] + warp * _smooth_noise(rng, size, 6)
    xx = grid[None, :] + warp * _smooth_noise(rng, size, 6)
    best = np.full((size, size), np.inf, dtype=np.float32)
    owner = np.zeros((size, size), dtype=np.int64)
    for k, (sy, sx) in enumerate(seeds):
        dist = (yy - sy) ** 2 + (xx - sx) ** 2
        closer = dist < best
        best[closer] = dist[closer]
        owner[closer] = k
    return owner, classes.astype(np.uint8)


def _texture(cls: int, size: int, rng: np.random.Generator) -> np.ndarray:
    """``(size, size, 3)`` float32 texture of land-cover class ``cls`` over the whole tile."""
    fine = _smooth_noise(rng, size, size // 2)[..., None]
    if cls == 0:  # urban: grey blocks with darker streets
        cell = max(2, size // 32)
        n = -(-size // cell)
        blocks = rng.uniform(95, 195, size=(n, n)).astype(np.float32)
        grey = np.kron(blocks, np.ones((cell, cell), dtype=np.float32))[:size, :size]
        idx = np.arange(size)
        street = (idx // cell) % 4 == 0
        grey = np.where(street[:, None] | street[None, :], 70.0, grey)
        return grey[..., None] * np.asarray([1.0, 1.0, 1.03], dtype=np.float32) + 8 * fine
    if cls == 1:  # agriculture: only the noise here; each field adds its own stripes (see _field_stripes)
        return 6 * fine
    if cls == 2:  # rangeland: mottled olive-brown
        mottle = _smooth_noise(rng, size, max(2, size // 16))[..., None]
        return np.asarray([160, 150, 100], np.float32) + 22 * mottle + 8 * fine
    if cls == 3:  # forest: dark green, high-frequency noise
        return np.asarray([35, 85, 35], np.float32) + 22 * _smooth_noise(rng, size, size // 4)[..., None]
    if cls == 4:  # water: smooth blue
        return np.asarray([30, 70, 150], np.float32) + 8 * _smooth_noise(rng, size, 3)[..., None]
    if cls == 5:  # barren: light brown
        return np.asarray([205, 175, 135], np.float32) + 12 * _smooth_noise(rng, size, max(2, size // 8))[..., None]
    return np.zeros((size, size, 3), np.float32) + 3 * fine  # unknown: black


def _field_stripes(owner: np.ndarray, n_regions: int, rng: np.random.Generator) -> np.ndarray:
    """``(size, size, 3)`` yellow-green stripes whose orientation differs from region to region."""
    size = owner.shape[0]
    thetas = rng.uniform(0, np.pi, size=n_regions).astype(np.float32)[owner]
    grid = np.arange(size, dtype=np.float32)
    phase = grid[None, :] * np.cos(thetas) + grid[:, None] * np.sin(thetas)
    stripes = (0.5 + 0.5 * np.sin(2 * np.pi * phase / max(4.0, size / 40)))[..., None]
    yellow, green = np.asarray([205, 200, 75], np.float32), np.asarray([125, 170, 55], np.float32)
    return green + (yellow - green) * stripes


def land_cover_tile(size: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Draw one synthetic tile: ``(image (size, size, 3) uint8, ids (size, size) uint8 in 0-6)``."""
    _check_count("size", size, 16)
    owner, classes = _regions(size, rng)
    ids = classes[owner]
    img = np.zeros((size, size, 3), dtype=np.float32)
    for cls in np.unique(ids):  # one texture per class and tile ...
        texture = _texture(int(cls), size, rng)
        if cls == 1:  # ... but every agriculture field gets its own stripe direction
            texture = texture + _field_stripes(owner, len(classes), rng)
        sel = ids == cls
        img[sel] = texture[sel]
    img += 6.0 * rng.standard_normal(size=img.shape, dtype=np.float32)
    return np.clip(img, 0, 255).round().astype(np.uint8), ids


def make_segmentation_data(
    root: str | Path, n_train: int = 12, n_val: int = 4, size: int = 512, seed: int = 0, overwrite: bool = False
) -> Path:
    """Write a P2-style synthetic land-cover set under ``root`` and return ``root``.

    Layout: ``root/train/NNNN_sat.jpg`` (JPEG quality 90) + ``NNNN_mask.png`` (RGB, course palette)
    for ``NNNN`` = ``0000 .. n_train-1``, and the same in ``root/validation`` for ``n_val`` tiles.
    Tiles are ``size`` x ``size``. Raises :class:`ConfigError` naming a bad count or size, and
    :class:`DataError` if an output folder already holds files and ``overwrite`` is false; nothing
    is written then.
    """
    _check_count("n_train", n_train, 1, 9999)
    _check_count("n_val", n_val, 1, 9999)
    _check_count("size", size, 16)
    _check_count("seed", seed, 0)
    root = Path(root)
    splits = (("train", root / "train", n_train), ("val", root / "validation", n_val))
    _prepare_dirs([folder for _, folder, _ in splits], overwrite)
    for split, folder, count in splits:
        for i in range(count):
            rng = np.random.default_rng([seed, 2 + _SPLIT_IDS[split], i])
            image, ids = land_cover_tile(size, rng)
            sat = Image.fromarray(image, mode="RGB")
            atomic_save(folder / f"{i:04d}_sat.jpg", partial(sat.save, format="JPEG", quality=90))
            write_mask(folder / f"{i:04d}_mask.png", ids)
    return root
