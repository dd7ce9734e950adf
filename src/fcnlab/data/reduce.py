"""Tiles reduced by a whole factor: images by an area (box) filter, masks by a majority vote.

A mask is never reduced by sampling one pixel of each block (nearest sampling at 1/4 size keeps 1 pixel in
16 and loses thin regions at random): each reduced pixel takes the class that covers most of its block.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from fcnlab.errors import DataError


def reduction_factor(height: int, width: int, input_size: int, source: str | Path) -> int:
    """The whole factor ``k`` that reduces ``height`` to ``input_size`` (1 when ``input_size`` is 0).

    Raises a one-line DataError naming ``source`` when ``input_size`` does not divide the tile's sides.
    """
    if not input_size or input_size == height == width:
        return 1
    k = height // input_size
    if k < 1 or height % input_size or width % k:
        sides = ", ".join(str(height // f) for f in (2, 4, 8) if height % f == 0 and width % f == 0) or "none"
        raise DataError(
            f"{source}: tiles are {width}x{height}; --input-size {input_size} must divide them by a "
            f"whole factor (for these tiles: {sides}), or use --input-size 0 for full size"
        )
    return k


def reduce_image(image: np.ndarray, k: int) -> np.ndarray:
    """``(H, W, 3)`` uint8 -> ``(H/k, W/k, 3)``: the rounded mean of each ``k`` x ``k`` block."""
    if k == 1:
        return image
    return np.asarray(Image.fromarray(image).reduce(k))


def majority_vote(mask: np.ndarray, k: int, num_classes: int = 7) -> np.ndarray:
    """``(H, W)`` class ids -> ``(H/k, W/k)``: the most frequent class of each ``k`` x ``k`` block.

    Ties go to the lower class id (so class 6, "unknown", never wins a tie).
    """
    if k == 1:
        return mask
    h, w = mask.shape
    blocks = mask.reshape(h // k, k, w // k, k).transpose(0, 2, 1, 3).reshape(h // k, w // k, k * k)
    counts = (blocks[..., None] == np.arange(num_classes, dtype=mask.dtype)).sum(axis=2)
    return counts.argmax(axis=-1).astype(mask.dtype)
