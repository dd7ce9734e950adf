"""P2 data: ``NNNN_sat.jpg`` tiles paired by stem with ``NNNN_mask.png`` RGB masks."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from fcnlab.data.cache import load_or_build
from fcnlab.data.images import SizeCheck, image_size, list_images, name_clash, read_rgb
from fcnlab.data.mask_codec import OffPaletteReport, read_mask
from fcnlab.data.reduce import majority_vote, reduce_image, reduction_factor
from fcnlab.errors import DataError

_TILE_RE = re.compile(r"^(.*)_sat$")
_MASK_RE = re.compile(r"^(.*)_mask$")


def _preview(items: list[str], n: int = 5) -> str:
    more = f", ... ({len(items)} in all)" if len(items) > n else ""
    return ", ".join(items[:n]) + more


def pair_files(folder: str | Path, need_masks: bool = True) -> list[tuple[Path, Path | None]]:
    """Pair ``<stem>_sat.*`` tiles with ``<stem>_mask.png`` by stem (never by sorted position).

    Without masks (``need_masks=False``) every image of the folder is a tile (``*_mask`` files skipped).
    """
    folder = Path(folder)
    files = list_images(folder, "satellite tiles")
    tiles: dict[str, Path] = {}
    masks: dict[str, Path] = {}
    others: list[Path] = []
    for f in files:
        if m := _TILE_RE.match(f.stem):
            tiles.setdefault(m.group(1), f)
        elif m := _MASK_RE.match(f.stem):
            masks.setdefault(m.group(1), f)
        else:
            others.append(f)
    for pattern in (_TILE_RE, _MASK_RE):  # e.g. 0002_sat.jpg and 0002_sat.png: one would be dropped unseen
        clash = name_clash((f for f in files if pattern.match(f.stem)), lambda f: f.stem)
        if clash:
            a, b, stem = clash
            raise DataError(
                f"{folder}: {a.name} and {b.name} share the name {stem} (one would be left out); "
                f"move one of them out of the folder"
            )
    if not need_masks:
        found = sorted(list(tiles.values()) + others)
        if not found:
            raise DataError(f"{folder}: folder holds only masks, no images to predict")
        return [(f, None) for f in found]
    if not tiles:
        raise DataError(f"{folder}: no satellite tiles (expected NNNN_sat.jpg with NNNN_mask.png)")
    lonely_tiles = sorted(set(tiles) - set(masks))
    lonely_masks = sorted(set(masks) - set(tiles))
    if lonely_tiles or lonely_masks:
        parts = []
        if lonely_tiles:
            parts.append(f"tiles without a mask: {_preview([tiles[s].name for s in lonely_tiles])}")
        if lonely_masks:
            parts.append(f"masks without a tile: {_preview([masks[s].name for s in lonely_masks])}")
        raise DataError(
            f"{folder}: unpaired files; "
            + "; ".join(parts)
            + "; every NNNN_sat.jpg needs its NNNN_mask.png: add the missing files or move the "
            "extra ones out"
        )
    return [(tiles[s], masks[s]) for s in sorted(tiles)]


def load_pair(tile: Path, mask: Path | None) -> tuple[np.ndarray, np.ndarray | None, int]:
    """Decode a tile (H, W, 3) and its mask (H, W) class ids; also the mask's off-palette pixel count."""
    img = read_rgb(tile)
    if mask is None:
        return img, None, 0
    ids, n_off = read_mask(mask)
    if ids.shape != img.shape[:2]:
        raise DataError(
            f"{mask}: mask is {ids.shape[1]}x{ids.shape[0]} but its tile {tile.name} is "
            f"{img.shape[1]}x{img.shape[0]}; a mask must have its tile's size"
        )
    return img, ids, n_off


@dataclass
class TileSet:
    """Decoded tiles ``(N, 3, H, W)`` uint8 and masks ``(N, H, W)`` uint8 (in memory or memory-mapped)."""

    images: np.ndarray
    masks: np.ndarray
    files: list[Path]
    off_palette: OffPaletteReport = field(default_factory=OffPaletteReport)
    reduction: int = 1  # the tiles were reduced by this whole factor (``input_size``); 1: full size
    mask_files: list[Path] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.files)

    def batch(self, index: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """uint8 tiles ``(B, 3, H, W)`` and int64 masks ``(B, H, W)`` for the given indices."""
        idx = index.numpy()
        return (
            torch.from_numpy(np.ascontiguousarray(self.images[idx])),
            torch.from_numpy(np.ascontiguousarray(self.masks[idx])).long(),
        )

    def class_pixel_counts(self, num_classes: int = 7) -> np.ndarray:
        """Pixels per class over the whole set (for class-weighted losses)."""
        counts = np.zeros(num_classes, dtype=np.int64)
        for i in range(0, len(self), 64):
            counts += np.bincount(np.asarray(self.masks[i : i + 64]).ravel(), minlength=num_classes)[:num_classes]
        return counts


def load_tile_set(
    folder: str | Path, limit: int = 0, cache: str = "auto", seed: int = 0, input_size: int = 0
) -> TileSet:
    """Decode every tile/mask pair of ``folder`` once (all tiles must share one size).

    ``limit`` N > 0 keeps N pairs drawn at random with ``seed`` (:func:`fcnlab.data.subset.random_subset`).
    ``input_size`` N > 0 keeps the tiles reduced to N pixels a side (:mod:`fcnlab.data.reduce`: images by an
    area filter, masks by majority vote; N must divide the tiles' side), cached apart from the full-size ones.
    """
    pairs = pair_files(folder)
    if limit:
        from fcnlab.data.subset import random_subset

        pairs = [pairs[i] for i in random_subset(len(pairs), limit, seed)]
    w, h = image_size(pairs[0][0])
    k = reduction_factor(h, w, input_size, pairs[0][0])
    report = OffPaletteReport()
    sizes = SizeCheck(
        [t for t, _ in pairs],
        (h, w),
        "tile",
        "tiles for training and validation must share one size (crop or resize the odd one)",
    )

    def decode(i: int) -> dict[str, np.ndarray]:
        tile, mask = pairs[i]
        img, ids, n_off = load_pair(tile, mask)
        if not sizes.fits(i, img.shape[:2]):
            return {}  # refused by sizes.check() once every size is known
        img, ids = reduce_image(img, k), majority_vote(ids, k)  # type: ignore[arg-type]  # tiles have masks
        return {"images": img.transpose(2, 0, 1), "masks": ids, "off_palette": np.int64(n_off)}

    files = [p for pair in pairs for p in pair if p is not None]
    kind = "p2" if k == 1 else f"p2-reduced{k}"  # its own disk cache
    h, w = h // k, w // k
    arrays = load_or_build(
        kind,
        files,
        {"images": (len(pairs), 3, h, w), "masks": (len(pairs), h, w), "off_palette": (len(pairs),)},
        decode,
        mode=cache,
        dtypes={"off_palette": "int64"},
        check=sizes.check,
    )
    for (_, mask), n in zip(pairs, arrays["off_palette"], strict=True):
        if n:
            report.add(mask, int(n))  # type: ignore[arg-type]  # off-palette pixels come from a mask
    return TileSet(
        arrays["images"], arrays["masks"], [t for t, _ in pairs], report, k, [m for _, m in pairs if m is not None]
    )
