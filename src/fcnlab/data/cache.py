"""Decode a data set once and keep the uint8 arrays in memory or in a memory-mapped disk cache.

The disk cache lives in ``$FCNLAB_CACHE`` (default ``~/.cache/fcnlab``), one folder per data set, keyed by
a hash of the source files' names, sizes and modification times (and the decoder version), so a changed,
added or removed file rebuilds it. It is written to a temporary folder and renamed into place, so an
interrupted build never leaves a half cache behind.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from fcnlab.runtime.files import make_folder

DECODER_VERSION = 1
MEMORY_LIMIT_BYTES = int(os.environ.get("FCNLAB_CACHE_MEMORY_LIMIT", 4 * 1024**3))


def cache_root() -> Path:
    """Folder holding the disk caches."""
    return Path(os.environ.get("FCNLAB_CACHE", Path.home() / ".cache" / "fcnlab"))


def source_key(kind: str, files: Sequence[Path], extra: str = "") -> str:
    """Hash of (kind, decoder version, each file's absolute name, size and mtime)."""
    h = hashlib.sha1(f"{kind}|{DECODER_VERSION}|{extra}".encode())
    for f in files:
        st = f.stat()
        h.update(f"{f.resolve()}|{st.st_size}|{st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:20]


def _threads() -> int:
    return max(1, min(8, os.cpu_count() or 1))


def decode_all(n: int, decode: Callable[[int], dict[str, np.ndarray]], out: dict[str, np.ndarray]) -> None:
    """Fill ``out[name][i]`` with ``decode(i)[name]`` for every i, decoding on a thread pool."""

    def work(i: int) -> None:
        for name, arr in decode(i).items():
            out[name][i] = arr

    with ThreadPoolExecutor(_threads()) as pool:
        list(pool.map(work, range(n)))


def load_or_build(
    kind: str,
    files: Sequence[Path],
    shapes: dict[str, tuple[int, ...]],
    decode: Callable[[int], dict[str, np.ndarray]],
    mode: str = "auto",
    dtypes: dict[str, str] | None = None,
) -> dict[str, np.ndarray]:
    """Return arrays ``{name: (n, *shape)}`` decoded from ``files`` (uint8 unless ``dtypes`` says otherwise).

    ``mode``: ``memory`` decodes into RAM; ``disk`` uses (and builds on first use) a memory-mapped cache;
    ``auto`` picks memory when the arrays are under ``FCNLAB_CACHE_MEMORY_LIMIT`` bytes (4 GiB) or a disk
    cache for this exact file set already exists; ``off`` is memory without touching the disk.
    """
    n = next(iter(shapes.values()))[0]
    dt = {name: np.dtype((dtypes or {}).get(name, "uint8")) for name in shapes}
    total = sum(int(np.prod(s)) * dt[name].itemsize for name, s in shapes.items())
    key = source_key(kind, files)
    folder = cache_root() / f"{kind}-{key}"
    if mode == "auto":
        mode = "disk" if (folder / "meta.json").is_file() or total > MEMORY_LIMIT_BYTES else "memory"
    if mode in ("memory", "off"):
        out = {name: np.empty(shape, dtype=dt[name]) for name, shape in shapes.items()}
        decode_all(n, decode, out)
        return out
    if not (folder / "meta.json").is_file():
        make_folder(folder.parent, option="FCNLAB_CACHE")
        tmp = Path(tempfile.mkdtemp(prefix=f".{kind}-{key}.", dir=folder.parent))
        try:
            out = {name: np.lib.format.open_memmap(tmp / f"{name}.npy", mode="w+", dtype=dt[name], shape=shape)
                   for name, shape in shapes.items()}
            decode_all(n, decode, out)
            for arr in out.values():
                arr.flush()
            del out
            (tmp / "meta.json").write_text(json.dumps({"kind": kind, "files": len(files),
                                                       "shapes": {k: list(v) for k, v in shapes.items()}}))
            try:
                os.replace(tmp, folder)
            except OSError:  # another process built it first
                pass
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
    return {name: np.load(folder / f"{name}.npy", mmap_mode="r") for name in shapes}
