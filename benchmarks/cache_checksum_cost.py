"""What the disk cache's content checksums cost, next to decoding the data they protect.

The disk cache keeps a CRC-32 per 16 MiB chunk of each array file and checks them every time the cache is
opened (:mod:`fcnlab.data.cache`). This script measures, on a P2 folder (default: the full training set,
1,800 tiles of 512x512 with their masks), in wall-clock seconds:

* ``decode``: decoding every tile and mask into memory (``--cache memory``: what a build does before writing);
* ``build``: building the disk cache from nothing (decode, write, checksums);
* ``checksums_warm``: computing every file's checksums with the cache in the page cache (an opened cache
  used again soon, the usual case);
* ``checksums_cold``: the same after the cache files' pages were dropped (``posix_fadvise DONTNEED`` on those
  files only), so the files are read from disk;
* ``open``: ``load_tile_set`` on the built cache (every validation step, checksums included).

::

    python benchmarks/cache_checksum_cost.py --data ../shared/data/dlcv/p2_data/train --out runs/cache_checksums

The cache is built in a temporary folder (``--cache-dir`` to choose it) and removed afterwards. Run it pinned
to the cores you want to count (``taskset -c 1 ...``): the decoder and the checksums both use a thread pool.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path


def drop_pages(folder: Path) -> None:
    """Evict the files of ``folder`` from the page cache (only them: other processes keep theirs)."""
    for path in folder.rglob("*.npy"):
        with open(path, "rb") as f:
            os.fsync(f.fileno())
            os.posix_fadvise(f.fileno(), 0, 0, os.POSIX_FADV_DONTNEED)


def seconds(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def measure(data: Path, cache_dir: Path, reps: int) -> dict:
    from fcnlab.data import cache
    from fcnlab.data.segmentation import load_tile_set
    from fcnlab.runtime.cores import usable_cores

    os.environ["FCNLAB_CACHE"] = str(cache_dir)
    result: dict = {"data": str(data), "cores": usable_cores(), "checksum_chunk_bytes": cache.CHECKSUM_CHUNK}
    result["decode"] = seconds(lambda: load_tile_set(data, cache="memory"))
    result["build"] = seconds(lambda: load_tile_set(data, cache="disk"))
    (folder,) = [p for p in cache_dir.iterdir() if p.is_dir() and not p.name.startswith(".")]
    files = sorted(folder.glob("*.npy"))
    result["tiles"] = len(load_tile_set(data, cache="disk"))
    result["bytes"] = sum(f.stat().st_size for f in files)

    def checksums() -> None:
        for f in files:
            cache.content_checksums(f)

    checksums()  # warm
    result["checksums_warm"] = min(seconds(checksums) for _ in range(reps))
    cold = []
    for _ in range(reps):
        drop_pages(folder)
        cold.append(seconds(checksums))
    result["checksums_cold"] = min(cold)
    result["open"] = min(seconds(lambda: load_tile_set(data, cache="disk")) for _ in range(reps))
    result["checksum_gb_per_s_warm"] = result["bytes"] / result["checksums_warm"] / 1e9
    for key in ("checksums_warm", "checksums_cold", "open"):
        result[f"{key}_share_of_decode"] = result[key] / result["decode"]
    return result


def markdown(r: dict) -> str:
    gb = r["bytes"] / 1e9
    rows = [
        ("decode into memory", r["decode"], ""),
        ("build the disk cache (decode, write, checksums)", r["build"], ""),
        (
            f"checksums, files in the page cache ({gb:.2f} GB)",
            r["checksums_warm"],
            f"{r['checksums_warm_share_of_decode']:.1%}",
        ),
        ("checksums, files read from disk", r["checksums_cold"], f"{r['checksums_cold_share_of_decode']:.1%}"),
        ("open the built cache (validation and checksums)", r["open"], f"{r['open_share_of_decode']:.1%}"),
    ]
    lines = [
        f"P2 {r['tiles']} tiles ({r['data']}), {r['cores']} core(s), CRC-32 per "
        f"{r['checksum_chunk_bytes'] // 2**20} MiB chunk ({r['checksum_gb_per_s_warm']:.2f} GB/s warm)",
        "",
        "| step | seconds | share of decode |",
        "|---|---:|---:|",
    ]
    lines += [f"| {name} | {sec:.2f} | {share} |" for name, sec, share in rows]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default="../shared/data/dlcv/p2_data/train", help="P2 folder of tiles and masks")
    parser.add_argument("--out", help="folder for result.json and result.md (default: print only)")
    parser.add_argument("--cache-dir", help="where to build the cache (default: a temporary folder, removed)")
    parser.add_argument("--reps", type=int, default=3, help="repetitions of the checksum and open timings (best)")
    args = parser.parse_args(argv)
    cache_dir = Path(args.cache_dir) if args.cache_dir else Path(tempfile.mkdtemp(prefix="fcnlab-checksum-bench-"))
    cache_dir.mkdir(parents=True, exist_ok=True)
    try:
        result = measure(Path(args.data), cache_dir, args.reps)
    finally:
        if not args.cache_dir:
            shutil.rmtree(cache_dir, ignore_errors=True)
    text = markdown(result)
    print(text, end="")
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        (out / "result.json").write_text(json.dumps(result, indent=1) + "\n")
        (out / "result.md").write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
