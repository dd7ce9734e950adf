"""Seeded subsets for ``--limit`` / ``--val-limit``: a few images that still represent the whole folder.

The files of a folder are sorted by name, and the course names P1 images ``{label}_{index}.png``: the first
N files are all of class 0. P1 therefore draws a class-stratified sample and P2 a uniform random one, both
from a generator seeded with the run's seed, so a limited run is reproducible and its accuracy means
something.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def random_subset(n: int, limit: int, seed: int) -> list[int]:
    """``limit`` of the indices ``0..n-1`` drawn without replacement (all of them if ``limit`` is 0 or >= n),
    returned in increasing order so that the subset keeps the folder's order."""
    if not limit or limit >= n:
        return list(range(n))
    rng = np.random.default_rng(seed)
    return sorted(int(i) for i in rng.choice(n, size=limit, replace=False))


def stratified_subset(labels: Sequence[int], limit: int, seed: int) -> list[int]:
    """``limit`` indices with the classes of ``labels`` as equally represented as possible, in increasing order.

    Each class's indices are shuffled, then taken round-robin over the classes (in a shuffled class order),
    so class counts differ by at most one until a class runs out; its share then goes to the others.
    """
    n = len(labels)
    if not limit or limit >= n:
        return list(range(n))
    rng = np.random.default_rng(seed)
    by_class: dict[int, list[int]] = {}
    for i, label in enumerate(labels):
        by_class.setdefault(int(label), []).append(i)
    queues = [list(rng.permutation(by_class[c])) for c in sorted(by_class)]
    order = rng.permutation(len(queues))
    chosen: list[int] = []
    depth = 0
    while len(chosen) < limit:
        for q in order:
            if depth < len(queues[q]):
                chosen.append(int(queues[q][depth]))
                if len(chosen) == limit:
                    break
        depth += 1
    return sorted(chosen)
