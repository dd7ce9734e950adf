"""Seeded subsets for ``--limit`` / ``--val-limit``: a few images that still represent the whole folder.

The files of a folder are sorted by name, and the course names P1 images ``{label}_{index}.png``: the first
N files are all of class 0. P1 therefore draws a class-stratified sample and P2 a uniform random one, both
from a generator seeded with the run's seed, so a limited run is reproducible and its accuracy means
something. The snapshot tiles of P2 training (the same validation tiles at every snapshot epoch) are
chosen here too: evenly spaced, or by name.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from fcnlab.errors import ConfigError


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


def snapshot_indices(n: int, k: int) -> list[int]:
    """``k`` fixed, evenly spaced validation indices."""
    k = min(k, n)
    return sorted({int(round(i * (n - 1) / max(k - 1, 1))) for i in range(k)}) if k > 1 else [0]


def named_indices(files: Sequence[Path], names: Sequence[str], folder: str | None = None) -> list[int]:
    """Indices of the validation tiles named in ``names`` (file names like ``0013_sat.jpg``, stems like
    ``0013_sat``, or the pair's number ``0013``), in the order given; ConfigError naming a missing one."""
    lookup: dict[str, list[int]] = {}
    for i, f in enumerate(files):
        number = f.stem.removesuffix("_sat")
        keys = [f.name, f.stem, number] + ([str(int(number))] if number.isdigit() else [])  # YAML reads 0013 as 13
        for key in dict.fromkeys(keys):
            lookup.setdefault(key, []).append(i)
    out = []
    for name in names:
        key = Path(str(name)).name
        if len(lookup.get(key, ())) > 1:  # e.g. 13 for 0013_sat.jpg and 13_sat.jpg: the plot would show either
            a, b = (files[i].name for i in lookup[key][:2])
            raise ConfigError(
                f"option snapshot_images (--snapshot-images): {name!r} names both {a} and {b}; give the full file name"
            )
        if key not in lookup:
            where = f"the {len(files)} validation tiles" + (f" of {folder}" if folder else "")
            shown = ", ".join(f.name for f in files[:3]) + (", ..." if len(files) > 3 else "")
            raise ConfigError(
                f"option snapshot_images (--snapshot-images): {name!r} is not among {where} "
                f"({shown}); give file names such as {files[0].name if files else '0000_sat.jpg'}"
                f" (a --val-limit sample may have left it out)"
            )
        if lookup[key][0] not in out:
            out.append(lookup[key][0])
    return out
