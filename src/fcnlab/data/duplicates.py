"""Identical images that carry different labels (e.g. p1 ``10_363.png`` = ``41_87.png``).

The course's p1 train set holds two byte-identical pairs under different labels. They cannot both be
right, but dropping them would silently change the training set, so fcnlab keeps them and reports them
in one warning line when a classification set is loaded. Detection hashes each image's *decoded pixels*
(so a re-encoded copy is caught too); :func:`file_digests` hashes the raw file bytes instead, for a
quick check of a folder without decoding it.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fcnlab.errors import DataError


@dataclass(frozen=True)
class DuplicateGroup:
    """Identical images (same pixels or bytes) and the label each one carries."""

    files: tuple[Path, ...]
    labels: tuple[int, ...]

    def describe(self) -> str:
        """``10_363.png = 41_87.png (labels 10, 41)``."""
        names = " = ".join(f.name for f in self.files)
        return f"{names} (labels {', '.join(str(lab) for lab in self.labels)})"


def image_digests(images: np.ndarray) -> list[bytes]:
    """One 16-byte BLAKE2b digest of the decoded pixels of each image of an ``(N, ...)`` uint8 array."""
    flat = np.asarray(images).reshape(len(images), -1)
    return [hashlib.blake2b(np.ascontiguousarray(row).tobytes(), digest_size=16).digest() for row in flat]


def file_digests(files: Sequence[str | Path]) -> list[bytes]:
    """One 16-byte BLAKE2b digest of the bytes of each file; an unreadable file raises DataError."""
    out = []
    for f in files:
        try:
            out.append(hashlib.blake2b(Path(f).read_bytes(), digest_size=16).digest())
        except OSError as e:
            raise DataError(f"{f}: cannot read the file ({e.strerror or e})") from None
    return out


def label_conflicts(
    digests: Iterable[bytes], labels: Sequence[int], files: Sequence[str | Path]
) -> list[DuplicateGroup]:
    """Groups of files with equal digests but more than one distinct label, in file order.

    Duplicates that agree on their label are harmless and not returned.
    """
    groups: dict[bytes, list[int]] = defaultdict(list)
    for i, d in enumerate(digests):
        groups[d].append(i)
    if sum(len(m) for m in groups.values()) != len(labels) or len(labels) != len(files):
        raise ValueError(f"digests, labels and files differ in length ({len(labels)} labels, {len(files)} files)")
    return [
        DuplicateGroup(tuple(Path(files[i]) for i in members), tuple(int(labels[i]) for i in members))
        for members in groups.values()  # dicts keep insertion order: groups come in file order
        if len(members) > 1 and len({int(labels[i]) for i in members}) > 1
    ]


def conflict_warning(groups: Sequence[DuplicateGroup], where: str | Path = "") -> str | None:
    """One warning line listing ``groups`` (without a prefix), or None when there are none.

    Print it as the CLI prints warnings: ``print(f"fcnlab: warning: {line}", file=sys.stderr)``.
    """
    if not groups:
        return None
    n = sum(len(g.files) for g in groups)
    place = f" in {where}" if str(where) else ""
    listed = "; ".join(g.describe() for g in groups)
    return (
        f"{n} identical images{place} carry different labels: {listed}; all are kept as labelled "
        f"(at most one label of each group can be right)"
    )


def check_labelled_images(
    images: np.ndarray, labels: Sequence[int], files: Sequence[str | Path], where: str | Path = ""
) -> str | None:
    """Detect pixel-identical images with conflicting labels; return the warning line or None.

    For training (``ClassificationTask.check_train_data``): call it once on the decoded classification training set
    (``ImageSet.images``, ``ImageSet.labels``, ``ImageSet.files``) and print the line, when it is not
    None, as ``fcnlab: warning: <line>`` on stderr.
    Costs one hash per image (about 0.1 s for the 20,000 p1 training images).
    """
    labels = [int(v) for v in (labels.tolist() if hasattr(labels, "tolist") else labels)]
    return conflict_warning(label_conflicts(image_digests(images), labels, files), where)
