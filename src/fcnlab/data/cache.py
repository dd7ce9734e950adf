"""Decode a data set once and keep the uint8 arrays in memory or in a memory-mapped disk cache.

The disk cache lives in ``$FCNLAB_CACHE`` (default ``~/.cache/fcnlab``), one folder per data set, keyed by
a hash of the source files' names, sizes and modification times (and the decoder version), so a changed,
added or removed file rebuilds it. It is written to a temporary folder (its disk space reserved first) and
renamed into place after a completion marker, so an interrupted build never leaves a half cache behind; a
cache damaged later fails validation and is rebuilt: a truncated file by its size, content changed in place at
the same size (a bad sector, a partial copy, another program) by a CRC-32 per 16 MiB chunk of each array
file, stored in the marker and checked every time the cache is opened (a fraction of a decode:
``benchmarks/cache_checksum_cost.py``).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from fcnlab.data.images import file_stat, real_path
from fcnlab.runtime.files import make_folder, writing

DECODER_VERSION = 1
MEMORY_LIMIT_BYTES = int(os.environ.get("FCNLAB_CACHE_MEMORY_LIMIT", 4 * 1024**3))


def cache_root() -> Path:
    """Folder holding the disk caches."""
    return Path(os.environ.get("FCNLAB_CACHE", Path.home() / ".cache" / "fcnlab"))


def source_key(kind: str, files: Sequence[Path], extra: str = "") -> str:
    """Hash of (kind, decoder version, each file's absolute name, size and mtime)."""
    h = hashlib.sha1(f"{kind}|{DECODER_VERSION}|{extra}".encode())
    for f in files:
        st = file_stat(f)  # a broken link is one line naming it, not the OS's words
        h.update(f"{real_path(f)}|{st.st_size}|{st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:20]


def _threads() -> int:
    return max(1, min(8, os.cpu_count() or 1))


def decode_all(
    n: int, decode: Callable[[int], dict[str, np.ndarray]], out: Mapping[str, np.ndarray], desc: str = "decode"
) -> None:
    """Fill ``out[name][i]`` with ``decode(i)[name]`` for every i, decoding on a thread pool (with progress:
    the first decode of a large folder takes minutes on a laptop)."""
    from fcnlab.runtime.progress import Progress

    def work(i: int) -> None:
        for name, arr in decode(i).items():
            out[name][i] = arr

    with ThreadPoolExecutor(_threads()) as pool, Progress(n, desc, unit="image") as progress:
        for _ in pool.map(work, range(n)):
            progress.update()


MARKER = "meta.json"  # written last: a folder without it (or with other shapes) is an unfinished build
CHECKSUM_CHUNK = 16 * 1024**2  # bytes per CRC-32: small enough to name where damage is, few enough to store


def content_checksums(path: Path) -> list[int]:
    """CRC-32 of each :data:`CHECKSUM_CHUNK` bytes of ``path``, read through a memory map (no copy), the
    chunks on a thread pool (zlib releases the GIL while it sums)."""
    import mmap
    import zlib

    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        if size == 0:
            return []
        with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as mapped:
            view = memoryview(mapped)
            try:
                with ThreadPoolExecutor(_threads()) as pool:
                    return list(
                        pool.map(
                            lambda start: zlib.crc32(view[start : start + CHECKSUM_CHUNK]),
                            range(0, size, CHECKSUM_CHUNK),
                        )
                    )
            finally:
                view.release()


def checksum_problem(folder: Path, names: Sequence[str], found: dict) -> str | None:
    """Why the array files' content does not match the checksums of the marker ``found`` (a few words naming
    the file and the damaged bytes), or None when every chunk matches."""
    sums = found.get("checksums")
    if not isinstance(sums, dict) or found.get("checksum_chunk") != CHECKSUM_CHUNK:
        return "no content checksums (built by an older fcnlab)"
    for name in names:
        path = folder / f"{name}.npy"
        try:
            got = content_checksums(path)
        except (OSError, ValueError) as e:
            return f"{path.name}: unreadable ({e})"
        want = sums.get(name)
        if got != want:
            bad = next((i for i, (a, b) in enumerate(zip(got, want or [], strict=False)) if a != b), 0)
            return (
                f"{path.name}: content changed in bytes {bad * CHECKSUM_CHUNK}-{(bad + 1) * CHECKSUM_CHUNK - 1}, "
                f"which no longer match their checksum"
            )
    return None


def _notice(line: str) -> None:
    import sys

    print(f"fcnlab: {line}", file=sys.stderr, flush=True)


def _meta(kind: str, n_files: int, shapes: dict[str, tuple[int, ...]], dt: dict[str, np.dtype]) -> dict:
    return {
        "kind": kind,
        "files": n_files,
        "decoder": DECODER_VERSION,
        "shapes": {k: list(v) for k, v in shapes.items()},
        "dtypes": {k: dt[k].str for k in shapes},
    }


def cache_problem(folder: Path, meta: dict, shapes: dict[str, tuple[int, ...]], dt: dict[str, np.dtype]) -> str | None:
    """Why the cache in ``folder`` cannot be trusted (a few words), or None when it is complete and whole.

    Checks the completion marker's description against what is expected, then each array file's header
    (shape, dtype) and its size on disk, which a truncated or half-copied file fails, then its content
    against the marker's checksums (:func:`checksum_problem`).
    """
    try:
        found = json.loads((folder / MARKER).read_text())
    except FileNotFoundError:
        return f"no completion marker {MARKER} (an unfinished build)"
    except (OSError, ValueError) as e:
        return f"unreadable {MARKER} ({e})"
    if not isinstance(found, dict) or {k: found.get(k) for k in meta} != meta:
        return f"{MARKER} describes other arrays than expected"
    for name, shape in shapes.items():
        path = folder / f"{name}.npy"
        try:
            with open(path, "rb") as f:
                version = np.lib.format.read_magic(f)
                read_header = (
                    np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
                )
                header = read_header(f)  # (shape, fortran_order, dtype)
                offset = f.tell()
            size = path.stat().st_size
        except (OSError, ValueError) as e:
            return f"{path.name}: unreadable ({e})"
        if tuple(header[0]) != tuple(shape) or header[2] != dt[name]:
            return f"{path.name}: holds {header[2]} {tuple(header[0])}, expected {dt[name]} {tuple(shape)}"
        want = offset + int(np.prod(shape)) * dt[name].itemsize
        if size != want:
            return f"{path.name}: {size} bytes, expected {want} (truncated or damaged)"
    return checksum_problem(folder, list(shapes), found)


def _remove(folder: Path) -> None:
    """Delete a damaged cache folder: renamed aside first, so no other process opens it half deleted."""
    aside = folder.with_name(f".{folder.name}.damaged-{os.getpid()}")
    try:
        os.replace(folder, aside)
    except OSError:
        aside = folder
    shutil.rmtree(aside, ignore_errors=True)


def _build(
    folder: Path,
    kind: str,
    key: str,
    shapes: dict[str, tuple[int, ...]],
    dt: dict[str, np.dtype],
    n: int,
    decode: Callable[[int], dict[str, np.ndarray]],
    meta: dict,
    check: Callable[[], None] | None,
) -> None:
    """Decode into a temporary folder (space reserved up front) and rename it to ``folder`` when complete."""
    make_folder(folder.parent, option="FCNLAB_CACHE")
    tmp: Path | None = None
    todo = "free space there, set FCNLAB_CACHE to another disk, or use --cache memory"
    try:
        with writing(folder, what="build the disk cache", todo=todo, only_writes=True):
            tmp = Path(tempfile.mkdtemp(prefix=f".{kind}-{key}.", dir=folder.parent))
            out = {}
            for name, shape in shapes.items():
                arr = np.lib.format.open_memmap(tmp / f"{name}.npy", mode="w+", dtype=dt[name], shape=shape)
                # reserve the blocks now: a memory-mapped write into a full disk would kill the process (SIGBUS)
                with open(tmp / f"{name}.npy", "r+b") as f:
                    os.posix_fallocate(f.fileno(), 0, os.fstat(f.fileno()).st_size)
                out[name] = arr
        decode_all(n, decode, out, f"decode {kind}")
        if check is not None:
            check()
        with writing(folder, what="build the disk cache", todo=todo, only_writes=True):
            for arr in out.values():
                arr.flush()
            del out
            sums = {name: content_checksums(tmp / f"{name}.npy") for name in shapes}
            marker = {**meta, "checksum_chunk": CHECKSUM_CHUNK, "checksums": sums}
            (tmp / MARKER).write_text(json.dumps(marker))  # last: marks the build complete
            try:
                os.replace(tmp, folder)
            except OSError:  # another process built it first
                pass
    finally:
        if tmp is not None and tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def load_or_build(
    kind: str,
    files: Sequence[Path],
    shapes: dict[str, tuple[int, ...]],
    decode: Callable[[int], dict[str, np.ndarray]],
    mode: str = "auto",
    dtypes: dict[str, str] | None = None,
    check: Callable[[], None] | None = None,
) -> dict[str, np.ndarray]:
    """Return arrays ``{name: (n, *shape)}`` decoded from ``files`` (uint8 unless ``dtypes`` says otherwise).

    ``mode``: ``memory`` decodes into RAM; ``disk`` uses (and builds on first use) a memory-mapped cache;
    ``auto`` picks memory when the arrays are under ``FCNLAB_CACHE_MEMORY_LIMIT`` bytes (4 GiB) or a disk
    cache for this exact file set already exists; ``off`` is memory without touching the disk.
    ``check()``, when given, runs after every file is decoded and before a disk cache is committed (it raises
    to refuse the data, e.g. files that disagree with each other).

    A disk cache is validated before use (completion marker, shapes, dtypes, file sizes, content checksums);
    a damaged one is rebuilt with a one-line notice. A full or read-only cache disk is one :class:`OutputError` line.
    """
    n = next(iter(shapes.values()))[0]
    dt = {name: np.dtype((dtypes or {}).get(name, "uint8")) for name in shapes}
    total = sum(int(np.prod(s)) * dt[name].itemsize for name, s in shapes.items())
    key = source_key(kind, files)
    folder = cache_root() / f"{kind}-{key}"
    if mode == "auto":
        mode = "disk" if folder.is_dir() or total > MEMORY_LIMIT_BYTES else "memory"
    if mode in ("memory", "off"):
        out = {name: np.empty(shape, dtype=dt[name]) for name, shape in shapes.items()}
        decode_all(n, decode, out, f"decode {kind}")
        if check is not None:
            check()
        return out
    meta = _meta(kind, len(files), shapes, dt)
    if folder.is_dir():
        problem = cache_problem(folder, meta, shapes, dt)
        if problem is None:
            return {name: np.load(folder / f"{name}.npy", mmap_mode="r") for name in shapes}
        _notice(f"disk cache {folder} is damaged ({problem}); rebuilding it")
        _remove(folder)
    _build(folder, kind, key, shapes, dt, n, decode, meta, check)
    return {name: np.load(folder / f"{name}.npy", mmap_mode="r") for name in shapes}
