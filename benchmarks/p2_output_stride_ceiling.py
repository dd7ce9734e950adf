"""The course mIoU a perfect model could reach with logits at a reduced size, upsampled bilinearly.

A segmentation network that sees 128x128 tiles and scores at stride 4 gives 32x32 logits for a 512x512 tile. The
best such logits are the class fractions of each 16x16 block of the true mask; upsampled bilinearly to 512x512
and taken by argmax, they bound what any model with that output size can score. Usage:
``python benchmarks/p2_output_stride_ceiling.py DLCV_ROOT/p2_data/validation [--sides 128 64 32 16]``.
Results: docs/BENCHMARKS.md ("How fine must the logits be?").
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from fcnlab.data.mask_codec import NUM_CLASSES as CLASSES
from fcnlab.data.mask_codec import read_mask
from fcnlab.tasks.metrics import ConfusionMatrix, course_miou


def ceiling(masks: list[np.ndarray], side: int) -> tuple[float, list[float]]:
    """Course mIoU (and per-class IoU) of block class fractions at ``side`` x ``side``, upsampled bilinearly."""
    confusion = ConfusionMatrix(CLASSES)
    for mask in masks:
        truth = torch.from_numpy(mask.astype(np.int64))
        onehot = F.one_hot(truth, CLASSES).permute(2, 0, 1).float()[None]
        fractions = F.adaptive_avg_pool2d(onehot, side)
        pred = F.interpolate(fractions, size=mask.shape, mode="bilinear", align_corners=False).argmax(1)[0]
        confusion.update(truth, pred)
    result = course_miou(confusion.numpy())
    return result.mean, list(result.per_class)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path, help="a folder of NNNN_mask.png files (the validation tiles)")
    parser.add_argument("--sides", type=int, nargs="+", default=[128, 64, 40, 32, 16], help="logit sides")
    args = parser.parse_args()
    paths = sorted(args.folder.glob("*_mask.png"))
    if not paths:
        raise SystemExit(f"error: no *_mask.png files in {args.folder}")
    masks = [read_mask(p)[0] for p in paths]
    print(f"{len(masks)} masks of {masks[0].shape[0]}x{masks[0].shape[1]} from {args.folder}")
    print("| logits | mIoU ceiling | " + " | ".join(f"class #{i}" for i in range(6)) + " |")
    print("|---|---|" + "---|" * 6)
    for side in args.sides:
        mean, per_class = ceiling(masks, side)
        print(f"| {side}x{side} | {mean:.4f} | " + " | ".join(f"{v:.3f}" for v in per_class) + " |")


if __name__ == "__main__":
    main()
