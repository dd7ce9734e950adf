"""Rare-class-aware sampling of training tiles: repeat-factor sampling (LVIS, Gupta et al. 2019).

Each class ``c`` gets a repeat factor ``r_c = max(1, sqrt(t / f_c))``, where ``f_c`` is the fraction of
training tiles that contain it (at least ``min_fraction`` of their pixels) and ``t`` the threshold;
a tile's factor is that of the rarest class it contains, ``r_i = max_c r_c`` (1 for a tile of common
classes only). Unlike LVIS, whose epochs grow by the repeats, an epoch here keeps its length ``n``, so a
run keeps the step budget of its recipe: tile ``i`` appears ``n r_i / sum(r)`` times per epoch in
expectation, rare-class tiles more often than common ones, and every tile with a positive factor keeps a
positive chance in every epoch.

The per-epoch order comes from a generator seeded by ``(seed, epoch)`` alone, so a resumed run
recomputes exactly the order the interrupted one was following.

:func:`fill_last_batch` gives every batch of an order the same size, for compiled models (one shape).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch


def tile_class_fractions(masks: np.ndarray, num_classes: int, chunk: int = 64) -> np.ndarray:
    """``(N, num_classes)`` fraction of each tile's pixels in each class, for masks ``(N, H, W)``.

    Reads the (possibly memory-mapped) masks ``chunk`` tiles at a time.
    """
    n = len(masks)
    out = np.zeros((n, num_classes), dtype=np.float64)
    for start in range(0, n, chunk):
        block = np.asarray(masks[start : start + chunk]).reshape(min(chunk, n - start), -1).astype(np.int64)
        offsets = (np.arange(len(block)) * num_classes)[:, None]
        counts = np.bincount((block.clip(0, num_classes - 1) + offsets).ravel(), minlength=len(block) * num_classes)
        out[start : start + len(block)] = counts.reshape(len(block), num_classes) / max(block.shape[1], 1)
    return out


def repeat_factors(
    fractions: np.ndarray, threshold: float, classes: Sequence[int] | None = None, min_fraction: float = 0.01
) -> np.ndarray:
    """Per-tile repeat factors ``r_i = max(1, max_c sqrt(threshold / f_c))`` over the classes ``c`` it contains.

    ``fractions``: :func:`tile_class_fractions`. A tile contains class ``c`` when at least ``min_fraction``
    of its pixels are ``c``. Only ``classes`` count (all classes when None or empty).
    """
    n, num_classes = fractions.shape
    present = fractions >= min_fraction
    counted = np.zeros(num_classes, dtype=bool)
    counted[list(classes) if classes else slice(None)] = True
    tile_freq = present.mean(0) if n else np.zeros(num_classes)
    with np.errstate(divide="ignore"):
        class_r = np.where(tile_freq > 0, np.sqrt(threshold / np.maximum(tile_freq, 1e-12)), 1.0)
    class_r = np.where(counted, np.maximum(class_r, 1.0), 1.0)
    return np.where(present, class_r[None, :], 1.0).max(1, initial=1.0)


def expected_counts(factors: np.ndarray, length: int | None = None) -> np.ndarray:
    """How often each tile is drawn per epoch of ``length`` draws (default: one per tile) on average."""
    length = len(factors) if length is None else length
    return length * factors / factors.sum()


def epoch_indices(factors: np.ndarray, epoch: int, seed: int, length: int | None = None) -> torch.Tensor:
    """The shuffled tile indices of ``epoch``: ``length`` draws (default: one per tile), tile ``i`` drawn
    ``floor(e_i)`` or ``ceil(e_i)`` times where ``e_i`` are the :func:`expected_counts`.

    Systematic sampling on a randomly ordered cumulative sum (one uniform offset): exactly ``length``
    draws, the expected count of every tile exactly ``e_i``, and far less spread than independent draws
    with replacement. Deterministic in ``(seed, epoch)``.
    """
    n = len(factors)
    length = n if length is None else length
    if n == 0 or length == 0:
        return torch.zeros(0, dtype=torch.int64)
    gen = torch.Generator().manual_seed(int(seed) * 1_000_003 + int(epoch))
    order = torch.randperm(n, generator=gen)
    expected = torch.from_numpy(expected_counts(np.asarray(factors, dtype=np.float64), length))[order]
    edges = torch.cat([torch.zeros(1, dtype=torch.float64), expected.cumsum(0)])
    offset = torch.rand(1, generator=gen, dtype=torch.float64)
    # draw k falls at position offset + k on the cumulative axis; tile j owns [edges[j], edges[j+1])
    points = offset + torch.arange(length, dtype=torch.float64)
    owner = torch.searchsorted(edges, points, right=True) - 1
    picks = order[owner.clamp(0, n - 1)]
    return picks[torch.randperm(length, generator=gen)]


def shard(indices: torch.Tensor, rank: int, world_size: int) -> torch.Tensor:
    """This rank's share of an epoch's indices (every ``world_size``-th, padded to equal lengths like
    ``DistributedSampler``)."""
    if world_size <= 1:
        return indices
    per_rank = -(-len(indices) // world_size)
    total = per_rank * world_size
    if total > len(indices) and len(indices):
        indices = torch.cat([indices, indices[: total - len(indices)]])
    return indices[rank:total:world_size]


def fill_last_batch(batches: list[torch.Tensor], order: torch.Tensor, size: int) -> list[torch.Tensor]:
    """``batches`` (consecutive splits of ``order``) with a short last batch filled to ``size`` from the start
    of ``order``, so a compiled model sees one shape (:func:`fcnlab.runtime.device.compile_model`). Training
    trains on the filled samples; evaluation drops their outputs. A single batch is left as it is: one shape
    already."""
    if len(batches) > 1 and len(batches[-1]) < size:
        batches = [*batches[:-1], torch.cat([batches[-1], order[: size - len(batches[-1])]])]
    return batches
