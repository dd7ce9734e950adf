"""The mask evaluator benchmark: fcnlab's mIoU vs the course's ``mean_iou_evaluate.py`` on the same folders.

Each evaluator runs in its own subprocess; its wall time (interpreter start and imports included, as a user
sees it) and its peak RSS (``ru_maxrss`` of that child, from ``os.wait4``) are recorded, and the printed
``mean_iou`` values are compared so a fast but wrong evaluator cannot pass. The predictions are the ground
truth masks shifted by a few pixels with 10 % of the pixels set to random classes, written to a temporary
folder (inputs are never touched).
"""

from __future__ import annotations

import re
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from fcnlab.data.images import list_images
from fcnlab.data.mask_codec import NUM_CLASSES, read_mask, write_mask
from fcnlab.errors import DataError

_MEAN_RE = re.compile(r"mean_iou:\s*([-+0-9.eEnaN]+)")
LIBRARY_SNIPPET = (
    "import sys; from fcnlab.evaluate.mask_folders import evaluate_masks; "
    "from fcnlab.tasks.metrics import format_course_lines; "
    "print(format_course_lines(evaluate_masks(sys.argv[1], sys.argv[2])))"
)


def course_script() -> Path | None:
    """The course's evaluator as fcnlab ships it (:mod:`fcnlab.bench.course_mean_iou`); None if it is missing."""
    path = Path(__file__).with_name("course_mean_iou.py")
    return path if path.is_file() else None


def write_synthetic_masks(folder: Path, n: int, size: int = 512, seed: int = 0) -> Path:
    """``n`` blocky random label masks ``NNNN_mask.png`` of ``size`` x ``size`` (the course needs 512)."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    block = max(1, size // 16)
    for i in range(n):
        coarse = rng.choice(NUM_CLASSES, size=(-(-size // block),) * 2, p=[0.11, 0.56, 0.08, 0.12, 0.04, 0.08, 0.01])
        ids = np.kron(coarse, np.ones((block, block), dtype=np.int64))[:size, :size].astype(np.uint8)
        write_mask(folder / f"{i:04d}_mask.png", ids)
    return folder


def write_predictions(labels_dir: Path, out_dir: Path, seed: int = 0, workers: int = 4) -> int:
    """Write a perturbed copy of every ``*_mask.png`` of ``labels_dir`` into ``out_dir``; return the count."""
    masks = [p for p in list_images(labels_dir, "label masks") if p.stem.endswith("_mask")]
    if not masks:
        raise DataError(f"{labels_dir}: no NNNN_mask.png label masks to evaluate")
    out_dir.mkdir(parents=True, exist_ok=True)

    def one(i: int) -> None:
        ids, _ = read_mask(masks[i])
        rng = np.random.default_rng([seed, i])
        ids = np.roll(ids, (3, -5), axis=(0, 1))
        noise = rng.random(ids.shape) < 0.1
        ids[noise] = rng.integers(0, NUM_CLASSES, size=int(noise.sum()), dtype=np.uint8)
        write_mask(out_dir / masks[i].name, ids)

    with ThreadPoolExecutor(max(1, workers)) as pool:
        list(pool.map(one, range(len(masks))))
    return len(masks)


#: Runs ``argv[1:]`` and prints its wall time and ``RUSAGE_CHILDREN`` peak RSS. The measured command must be
#: started by this small process, not by the benchmark: Linux carries the forking process's RSS into the
#: child's ``ru_maxrss``, so a child of a 3 GB benchmark process would report at least its parent's size.
_MARK = "__fcnlab_bench_measured__"
WRAPPER = (
    "import resource, subprocess, sys, time; t = time.perf_counter(); "
    "code = subprocess.run(sys.argv[1:], stdin=subprocess.DEVNULL).returncode; "
    "dt = time.perf_counter() - t; "
    "rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss; "
    f"print('\\n{_MARK}', code, dt, rss)"
)


def run_measured(cmd: list[str], timeout: float = 1800.0) -> dict[str, Any]:
    """Run ``cmd`` in a fresh small wrapper process; return its seconds, peak RSS (MiB), exit code, mean_iou.

    The seconds are the command's own wall time (interpreter start and imports included, not the wrapper's).
    """
    with tempfile.TemporaryFile() as out:
        try:
            subprocess.run(
                [sys.executable, "-c", WRAPPER, *cmd],
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                timeout=timeout,
                check=False,
            )
        except subprocess.TimeoutExpired:
            pass
        out.seek(0)
        text = out.read().decode("utf-8", "replace")
    marks = [line.split() for line in text.splitlines() if line.startswith(_MARK)]
    if not marks:
        return {
            "seconds": None,
            "peak_rss_mb": None,
            "returncode": None,
            "mean_iou": None,
            "output_tail": text[-400:] or f"no result within {timeout:.0f} s",
        }
    _, code, seconds, maxrss = marks[-1]
    usage_kb = int(maxrss) / (1024 if sys.platform == "darwin" else 1)
    match = _MEAN_RE.search(text)
    return {
        "seconds": round(float(seconds), 3),
        "peak_rss_mb": round(usage_kb / 1024, 1),
        "returncode": int(code),
        "mean_iou": float(match.group(1)) if match else None,
        "output_tail": None if int(code) == 0 else text[-400:],
    }


def bench_evaluator(labels_dir: Path | None, n_synthetic: int = 5, include_course: bool = True) -> dict[str, Any]:
    """Time fcnlab's evaluator (library call and ``fcnlab miou`` CLI) and the course script on one folder.

    ``labels_dir`` is a folder of label masks (e.g. ``p2_data/validation``); None uses ``n_synthetic``
    synthetic 512x512 masks.
    """
    with tempfile.TemporaryDirectory(prefix="fcnlab-bench-miou-") as tmp:
        source = "real"
        if labels_dir is None:
            labels_dir = write_synthetic_masks(Path(tmp) / "labels", n_synthetic)
            source = "synthetic"
        pred_dir = Path(tmp) / "pred"
        n = write_predictions(Path(labels_dir), pred_dir)
        py = sys.executable
        tools: dict[str, dict[str, Any]] = {
            "fcnlab_library": run_measured([py, "-c", LIBRARY_SNIPPET, str(labels_dir), str(pred_dir)]),
        }
        script = course_script() if include_course else None
        if script is not None:
            tools["course_script"] = run_measured([py, str(script), "-g", str(labels_dir), "-p", str(pred_dir)])
        tools["fcnlab_cli"] = run_measured(
            [py, "-m", "fcnlab", "miou", "--labels", str(labels_dir), "--pred", str(pred_dir)]
        )
    for t in tools.values():
        t["masks_per_s"] = round(n / t["seconds"], 2) if t["seconds"] else None
    ok = {name: t for name, t in tools.items() if t["returncode"] == 0}
    result: dict[str, Any] = {"masks": n, "source": source, "folder": str(labels_dir), "tools": tools}
    course = ok.get("course_script")
    if course is not None:
        for name in ("fcnlab_library", "fcnlab_cli"):
            if name in ok:
                speedup = course["seconds"] / ok[name]["seconds"]
                result[f"speedup_{name.removeprefix('fcnlab_')}"] = round(speedup, 2)
        means = [t["mean_iou"] for t in tools.values()]
        result["agree"] = None not in means and max(means) - min(means) < 1e-6
    elif include_course:
        result["note"] = "course script not run: fcnlab/bench/course_mean_iou.py is missing from the installation"
    return result
