"""P1 data: folders of ``{label}_{index}.png`` images, with an optional ``filename,label`` CSV."""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from fcnlab.data.cache import load_or_build
from fcnlab.data.images import SizeCheck, image_size, link_problem, list_images, read_rgb
from fcnlab.errors import DataError

_LABEL_RE = re.compile(r"^(\d+)_\d+$")


def label_from_name(path: Path) -> int | None:
    """The label encoded in ``{label}_{index}.png``, or None."""
    m = _LABEL_RE.match(path.stem)
    return int(m.group(1)) if m else None


def read_label_csv(csv_path: str | Path, folder: Path) -> dict[str, int]:
    """Read the course's ``filename,label`` CSV; every named file must exist in ``folder``.

    A file listed twice with two labels is refused (naming both lines): the CSV contradicts itself and
    no rule can tell which label is right. The same row repeated is accepted, as it says nothing new.
    """
    csv_path = Path(csv_path)
    if not csv_path.is_file():
        raise DataError(link_problem(csv_path) or f"{csv_path}: label CSV does not exist; check the path")
    labels: dict[str, int] = {}
    first_line: dict[str, int] = {}
    try:
        with open(csv_path, newline="", encoding="utf-8-sig") as f:
            rows = list(csv.reader(f))
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise DataError(f"{csv_path}: cannot read the label CSV ({e}); give a UTF-8 'filename,label' file") from None
    header = rows[0] if rows else None
    if header is None or [h.strip().lower() for h in header[:2]] != ["filename", "label"]:
        raise DataError(f"{csv_path}: expected a header 'filename,label', got {header}")
    for lineno, row in enumerate(rows[1:], start=2):
        if not row:
            continue
        try:
            name, label = row[0].strip(), int(row[1])
        except (IndexError, ValueError):
            raise DataError(f"{csv_path}:{lineno}: expected 'filename,label', got {row}") from None
        if not (folder / name).is_file():
            raise DataError(f"{csv_path}:{lineno}: names {name}, which does not exist in {folder}")
        if name in labels and labels[name] != label:
            raise DataError(
                f"{csv_path}:{lineno}: gives {name} label {label}, but line {first_line[name]} gives it "
                f"label {labels[name]}; keep one row per file (delete the wrong one)"
            )
        first_line.setdefault(name, lineno)
        labels[name] = label
    return labels


@dataclass
class ImageSet:
    """Decoded images ``(N, 3, H, W)`` uint8 (in memory or memory-mapped), labels and file names.

    Labels are -1 where unknown (prediction folders without labels).
    """

    images: np.ndarray
    labels: torch.Tensor
    files: list[Path]

    def __len__(self) -> int:
        return len(self.files)

    def batch(self, index: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """uint8 images ``(B, 3, H, W)`` and int64 labels for the given sample indices."""
        idx = index.numpy()
        return torch.from_numpy(np.ascontiguousarray(self.images[idx])), self.labels[index]


def scan_folder(
    folder: str | Path, need_labels: bool = True, csv_path: str | Path | None = None, num_classes: int | None = None
) -> tuple[list[Path], list[int]]:
    """List image files and their labels (from names, checked against the CSV when given)."""
    folder = Path(folder)
    files = list_images(folder)
    names = [label_from_name(f) for f in files]
    if csv_path is not None:
        from_csv = read_label_csv(csv_path, folder)
        for f, lab in zip(files, names, strict=True):
            if f.name in from_csv and lab is not None and from_csv[f.name] != lab:
                raise DataError(
                    f"{csv_path}: label {from_csv[f.name]} for {f.name} disagrees with its name (label {lab})"
                )
        names = [from_csv.get(f.name, lab) for f, lab in zip(files, names, strict=True)]
    labels = []
    for f, lab in zip(files, names, strict=True):
        if lab is None:
            if need_labels and csv_path is not None:
                raise DataError(
                    f"{csv_path}: has no row for {f.name} (in {folder}) and its name holds no label; "
                    f"add a row '{f.name},LABEL' or move the file out of the folder"
                )
            if need_labels:
                raise DataError(f"{f}: file name has no label (expected {{label}}_{{index}}.png, e.g. 12_450.png)")
            lab = -1
        elif num_classes is not None and not 0 <= lab < num_classes:
            raise DataError(
                f"{f}: label {lab} is out of range for {num_classes} classes (0-{num_classes - 1}); "
                f"fix the label or train with --num-classes {lab + 1} or more"
            )
        labels.append(lab)
    return files, labels


def load_image_set(
    folder: str | Path,
    need_labels: bool = True,
    csv_path: str | Path | None = None,
    num_classes: int | None = None,
    limit: int = 0,
    cache: str = "auto",
    seed: int = 0,
) -> ImageSet:
    """Decode a P1 folder once into a uint8 tensor (all images must share one size).

    ``limit`` N > 0 keeps a class-stratified sample of N images drawn with ``seed``
    (:func:`fcnlab.data.subset.stratified_subset`), not the first N files (which are all of class 0).
    """
    files, labels = scan_folder(folder, need_labels, csv_path, num_classes)
    if limit:
        from fcnlab.data.subset import stratified_subset

        keep = stratified_subset(labels, limit, seed)
        files, labels = [files[i] for i in keep], [labels[i] for i in keep]
    w, h = image_size(files[0])
    sizes = SizeCheck(
        files,
        (h, w),
        "image",
        "all images of a classification folder must share one size (resize or remove the odd one)",
    )

    def decode(i: int) -> dict[str, np.ndarray]:
        arr = read_rgb(files[i])
        if not sizes.fits(i, arr.shape[:2]):
            return {}  # refused by sizes.check() once every size is known
        return {"images": arr.transpose(2, 0, 1)}

    arrays = load_or_build("p1", files, {"images": (len(files), 3, h, w)}, decode, mode=cache, check=sizes.check)
    return ImageSet(arrays["images"], torch.tensor(labels, dtype=torch.int64), files)
