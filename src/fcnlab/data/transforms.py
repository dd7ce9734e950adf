"""Batch transforms as tensor ops, applied on the training device (GPU when training on one).

Training batches arrive as uint8 tensors; augmentation happens on the whole batch at once (one random
draw per sample from a dedicated ``torch.Generator``, whose state checkpoints save), then the batch is
normalised to float. Masks go through exactly the same geometric transform with nearest sampling.
"""

from __future__ import annotations

import functools
import math

import numpy as np
import torch
import torch.nn.functional as F

from fcnlab.data.pixel_ops import brightness, contrast, saturation

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def chw_tensor(image: np.ndarray) -> torch.Tensor:
    """An ``(H, W, 3)`` array as a ``(3, H, W)`` tensor that owns a writable copy of the pixels.

    ``np.ascontiguousarray`` returns the read-only array of a decoded image itself when its transpose is
    already contiguous (a 1x1 image), and ``torch.from_numpy`` then warns on stderr; a copy never warns.
    """
    return torch.from_numpy(image.transpose(2, 0, 1).copy())


@functools.lru_cache(maxsize=32)
def _channel_stats(
    mean: tuple[float, ...], std: tuple[float, ...], device: torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(1, C, 1, 1)`` mean and std on the 0-255 scale, made once per device.

    ``torch.tensor(list, device="cuda")`` is a blocking copy from pageable memory that waits for every queued
    kernel, so building these per batch put a host sync in every training and evaluation step.
    """
    with torch.inference_mode(False), torch.no_grad():  # ordinary tensors, usable in and out of inference mode
        m = (torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1) * 255.0).to(device)
        s = (torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1) * 255.0).to(device)
    return m, s


def normalize(images: torch.Tensor, mean=IMAGENET_MEAN, std=IMAGENET_STD) -> torch.Tensor:
    """uint8 ``(B, 3, H, W)`` -> float32 normalised by ``mean``/``std`` (per channel, on [0, 1] scale)."""
    m, s = _channel_stats(tuple(float(v) for v in mean), tuple(float(v) for v in std), images.device)
    return (images.float() - m) / s


def _rand(n: int, generator: torch.Generator) -> torch.Tensor:
    return torch.rand(n, generator=generator, device=generator.device)


def random_crop_flip(images: torch.Tensor, pad: int, generator: torch.Generator, flip: bool = True) -> torch.Tensor:
    """Per-sample random crop after zero padding by ``pad`` and random horizontal flip (CIFAR style).

    With ``pad`` the crop and the flip are one ``gather`` through a per-sample index: fewer ATen calls than
    advanced indexing with four broadcast index tensors (the host launches each one on a GPU) and about 5x
    faster on a CPU. The random draws (rows, columns, flips) are the same.
    """
    b, c, h, w = images.shape
    dev = images.device
    if not pad:
        if flip:
            do = (_rand(b, generator) < 0.5).to(dev)[:, None, None, None]
            images = torch.where(do, images.flip(-1), images)
        return images
    padded = F.pad(images, (pad, pad, pad, pad))
    oy = (_rand(b, generator) * (2 * pad + 1)).long().clamp_(max=2 * pad).to(dev)
    ox = (_rand(b, generator) * (2 * pad + 1)).long().clamp_(max=2 * pad).to(dev)
    cols = torch.arange(w, device=dev).expand(b, w)
    if flip:
        do = (_rand(b, generator) < 0.5).to(dev)
        cols = torch.where(do[:, None], (w - 1) - cols, cols)  # a flipped sample reads its row backwards
    rows = oy[:, None] + torch.arange(h, device=dev)
    index = (rows * padded.shape[-1])[:, :, None] + (ox[:, None] + cols)[:, None, :]  # (b, h, w) in the padded
    flat = padded.reshape(b, c, -1)
    return flat.gather(2, index.view(b, 1, h * w).expand(b, c, h * w)).view(b, c, h, w)


def resize(images: torch.Tensor, size: int) -> torch.Tensor:
    """Bilinear resize of a float batch to ``size`` x ``size`` (for ImageNet-sized backbones)."""
    if images.shape[-1] == size and images.shape[-2] == size:
        return images
    return F.interpolate(images, size=(size, size), mode="bilinear", align_corners=False, antialias=False)


def affine_grids(
    b: int,
    crop: int,
    height: int,
    width: int,
    generator: torch.Generator,
    min_scale: float,
    max_scale: float,
    flips: bool = True,
    rotations: bool = True,
    device: torch.device | None = None,
) -> torch.Tensor:
    """Sampling grids ``(B, crop, crop, 2)`` for random zoom, crop, flips and 90-degree rotations.

    A zoom ``s`` takes a square region of side ``crop / s`` source pixels (clamped to the tile) at a random
    position and resamples it to ``crop`` x ``crop``; ``s = 1`` is a plain random crop.
    """
    device = device or generator.device
    scale = min_scale + _rand(b, generator) * (max_scale - min_scale)
    side = (crop / scale).clamp(max=min(height, width))
    # region half-sizes and centres in normalised [-1, 1] coordinates (align_corners=False)
    hx, hy = side / width, side / height
    cx = (-1 + hx) + _rand(b, generator) * (2 - 2 * hx)
    cy = (-1 + hy) + _rand(b, generator) * (2 - 2 * hy)
    theta = torch.zeros(b, 2, 3, device=scale.device)
    theta[:, 0, 0], theta[:, 1, 1] = hx, hy
    if rotations:
        k = (_rand(b, generator) * 4).long().clamp(max=3)
        ang = k.float() * (math.pi / 2)
        cos, sin = torch.cos(ang).round(), torch.sin(ang).round()
        rot = torch.stack([torch.stack([cos, -sin], -1), torch.stack([sin, cos], -1)], 1)  # (B, 2, 2)
        theta[:, :, :2] = theta[:, :, :2] @ rot
    if flips:
        fx = torch.where(_rand(b, generator) < 0.5, -1.0, 1.0).to(theta.dtype)
        theta[:, :, 0] *= fx[:, None]
    theta[:, 0, 2], theta[:, 1, 2] = cx, cy
    return F.affine_grid(theta.to(device), [b, 1, crop, crop], align_corners=False)


def color_jitter(images: torch.Tensor, strength: float, generator: torch.Generator) -> torch.Tensor:
    """Per-sample brightness, contrast and saturation, each scaled by a factor drawn from ``[1-s, 1+s]``.

    ``images``: ``(B, 3, H, W)`` on the 0-255 scale (uint8 or float); returns float32 on the same scale, computed
    as torchvision's ``adjust_*`` on uint8 images (:mod:`fcnlab.data.pixel_ops`). No hue: land-cover classes are
    told apart by their colours, and a hue shift turns forest into water. Draws come from ``generator`` (saved in
    checkpoints), so resumed runs repeat them.
    """
    b = images.shape[0]
    factors = 1.0 + strength * (2.0 * torch.rand(3, b, generator=generator, device=generator.device) - 1.0)
    factors = factors.to(images.device)
    x = images.float()
    x = brightness(x, factors[0])
    x = contrast(x, factors[1])
    return saturation(x, factors[2])


def augment_pair(
    images: torch.Tensor,
    masks: torch.Tensor,
    crop: int,
    generator: torch.Generator,
    min_scale: float = 0.75,
    max_scale: float = 1.25,
    flips: bool = True,
    rotations: bool = True,
    image_mode: str = "bilinear",
) -> tuple[torch.Tensor, torch.Tensor]:
    """Apply one random geometric transform per sample to float images and their integer masks.

    ``images``: float ``(B, 3, H, W)``; ``masks``: integer ``(B, H, W)``. Masks use nearest sampling at the
    same points, so image and mask stay aligned; both come out ``crop`` x ``crop``.
    """
    b, _, h, w = images.shape
    grid = affine_grids(b, crop, h, w, generator, min_scale, max_scale, flips, rotations, images.device)
    out_img = F.grid_sample(images, grid, mode=image_mode, padding_mode="reflection", align_corners=False)
    out_mask = F.grid_sample(masks[:, None].float(), grid, mode="nearest", padding_mode="border", align_corners=False)
    return out_img, out_mask[:, 0].round().to(masks.dtype)


def cutmix_pair(
    images: torch.Tensor, masks: torch.Tensor, alpha: float, prob: float, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """CutMix for segmentation: a tile drawn with probability ``prob`` gets a box of the previous tile of the
    batch (the last tile's partner is the first), pixels and mask alike, so no label is blended.

    The box is CutMix's (Yun et al. 2019): side ``sqrt(1 - lam)`` of the tile's with ``lam ~ Beta(alpha,
    alpha)``, centred on a uniform pixel and clipped to the tile, one box per tile. ``images``: ``(B, C, H, W)``;
    ``masks``: ``(B, H, W)``. Every draw comes from ``generator`` (NumPy's Beta is seeded from it), so resumed
    runs repeat them. The boxes are computed on the generator's device; reading the seed is the one wait for
    that device a batch (torch has no Beta sampler that takes a generator).
    """
    b, _, h, w = images.shape
    if b < 2 or alpha <= 0 or prob <= 0:
        return images, masks
    dev = generator.device
    seed = int(torch.randint(0, 2**62, (1,), generator=generator, device=dev))
    lam = torch.from_numpy(np.random.default_rng(seed).beta(alpha, alpha, size=b)).float().to(dev)
    mixed = _rand(b, generator) < prob
    cy, cx = (_rand(b, generator) * h).floor(), (_rand(b, generator) * w).floor()
    cut = (1.0 - lam).sqrt()
    half_h, half_w = (cut * h / 2).floor(), (cut * w / 2).floor()
    y0, y1 = (cy - half_h).clamp(min=0), (cy + half_h).clamp(max=h)
    x0, x1 = (cx - half_w).clamp(min=0), (cx + half_w).clamp(max=w)
    ys, xs = torch.arange(h, device=dev).view(1, h, 1), torch.arange(w, device=dev).view(1, 1, w)
    inside = (ys >= y0.view(b, 1, 1)) & (ys < y1.view(b, 1, 1)) & (xs >= x0.view(b, 1, 1)) & (xs < x1.view(b, 1, 1))
    box = (inside & mixed.view(b, 1, 1)).to(images.device)
    out_img = torch.where(box[:, None], images.roll(1, 0), images)
    out_mask = torch.where(box, masks.roll(1, 0), masks)
    return out_img, out_mask
