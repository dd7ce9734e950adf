"""``fcnlab bench`` orchestration: which sections run at which sizes, and what each result is measured against.

Sections: ``matmul`` (the device's peak, always measured when a model section runs, for MFU), the three
models ``vgg16_bn``, ``fcn32s_vgg16`` and ``fcn8s_resnet34``, ``pipeline`` (data loader alone and end-to-end
epochs vs pure steps; aliases ``data`` and ``e2e``), ``evaluator`` and ``tsne``. A section that fails is
recorded under ``errors`` and the others still run.
"""

from __future__ import annotations

import datetime as _dt
import functools
import os
import sys
import tempfile
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from fcnlab.bench.sections import MODEL_SECTIONS, SECTIONS, parse_only

__all__ = ["MODEL_SECTIONS", "SECTIONS", "BenchOptions", "parse_only", "run_bench", "wanted"]


@dataclass
class BenchOptions:
    """What to measure and how big."""

    quick: bool = False
    device: str = "auto"
    data: Path | None = None
    only: tuple[str, ...] = ()
    threads: int = 0
    compile: bool = False
    compile_mode: str = "default"
    log: Callable[[str], None] = field(default=lambda msg: print(f"bench: {msg}", file=sys.stderr, flush=True))


def wanted(opts: BenchOptions) -> list[str]:
    """Sections to run, in order (``matmul`` added whenever a model section runs, for MFU)."""
    chosen = set(opts.only or SECTIONS)
    if chosen & set(MODEL_SECTIONS):
        chosen.add("matmul")
    return [s for s in SECTIONS if s in chosen]


def device_info(device: torch.device) -> dict[str, Any]:
    """Name of the device and the library versions (a run's env.json plus the device itself)."""
    from fcnlab.runtime.device import environment

    info = environment()
    info["device"] = str(device)
    info["device_name"] = torch.cuda.get_device_name(device) if device.type == "cuda" else info.get("cpu")
    try:
        with open("/proc/cpuinfo") as f:
            names = [line.split(":", 1)[1].strip() for line in f if line.startswith("model name")]
        if names:
            info["cpu_model"] = names[0]
            if device.type == "cpu":
                info["device_name"] = f"{names[0]}, {os.cpu_count()} logical CPUs"
    except OSError:
        pass
    return info


def _comparisons(result: dict[str, Any]) -> list[dict[str, Any]]:
    """Each headline measurement beside what it is measured against: a peer (the unfolded P1 model, the course's
    evaluator script) or the hardware (this device's measured matmul peak; the pure model steps it runs when
    nothing else is in the way)."""
    rows: list[dict[str, Any]] = []

    def add(name: str, value: float | None, against: str) -> None:
        if value is not None:
            rows.append({"name": name, "value": value, "against": against})

    models = result.get("models", {})
    vgg = models.get("vgg16_bn", {})
    unfolded = "the unfolded model on this device (1.00: as fast)"
    add(f"P1 folded inference / unfolded, batch {vgg.get('eval_batch')}", vgg.get("folded_speedup"), unfolded)
    if vgg.get("infer_small"):
        add(
            f"P1 folded inference / unfolded, batch {vgg['infer_small']['batch']}",
            vgg.get("folded_speedup_small_batch"),
            unfolded,
        )
    add(
        f"P1 inference path (folded, BN fused) / bare model, batch {vgg.get('eval_batch')}",
        vgg.get("inference_path_speedup"),
        "the bare torchvision-style model on this device (1.00: as fast)",
    )
    for name, row in models.items():
        train = row.get("train") or {}
        if train.get("mfu") is not None:
            add(
                f"{name} training img/s ({row.get('input')}, batch {row.get('batch')})",
                train.get("img_per_s"),
                f"{train['mfu']:.1%} of this device's measured matmul peak",
            )
    for name, row in result.get("pipeline", {}).items():
        add(
            f"{name} end-to-end epoch / pure steps",
            row.get("e2e_over_pure"),
            "the model steps alone on this device (1.00: data loading and validation cost nothing)",
        )
    ev = result.get("evaluator", {})
    course = ev.get("tools", {}).get("course_script", {})
    for tool in ("library", "cli"):
        add(
            f"evaluator ({tool}) speed-up over the course script",
            ev.get(f"speedup_{tool}"),
            "the course's evaluator script on the same masks (1.00: as fast)",
        )
        rss = ev.get("tools", {}).get(f"fcnlab_{tool}", {}).get("peak_rss_mb")
        if ev.get("source") == "real" and course.get("peak_rss_mb") is not None:
            add(
                f"evaluator ({tool}) peak RSS MB on {ev.get('masks')} masks",
                rss,
                f"the course's script: {course['peak_rss_mb']:,.0f} MB",
            )
    return rows


def run_bench(opts: BenchOptions) -> dict[str, Any]:
    """Run the chosen sections on the chosen device; return the JSON-ready result."""
    from fcnlab.bench import evaluator, models, pipeline, timing, tsne_time
    from fcnlab.runtime.device import select_device

    device = select_device(opts.device)
    if opts.data is not None:
        pipeline.course_folders(Path(opts.data))  # fail fast, naming the missing folder
    if opts.threads:
        torch.set_num_threads(opts.threads)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    cuda, quick = device.type == "cuda", opts.quick
    sections = wanted(opts)
    created = _dt.datetime.now().astimezone().isoformat(timespec="seconds")
    result: dict[str, Any] = {
        "fcnlab_bench": 1,
        "created": created,
        "quick": quick,
        "sections": sections,
        "env": device_info(device),
        "errors": {},
    }
    result["env"]["loadavg_start"] = _loadavg()
    log = opts.log

    def section(name: str, fn: Callable[[], Any]) -> Any:
        log(f"{name} ...")
        try:
            with timing.stopwatch() as t:
                value = fn()
            log(f"{name} done in {t['seconds']:.1f}s")
            return value
        except Exception as e:  # noqa: BLE001 - a benchmark section failing must not hide the others
            result["errors"][name] = f"{type(e).__name__}: {e}"
            log(f"{name} FAILED: {type(e).__name__}: {e}\n{traceback.format_exc(limit=4)}")
            return None

    peak = None
    if "matmul" in sections:
        dtype = torch.bfloat16 if cuda else torch.float32
        size = (2048 if quick else 8192) if cuda else (512 if quick else 2048)
        mm = section(
            "matmul",
            lambda: timing.matmul_peak(
                device, dtype, size, windows=2 if quick else 5, min_window_s=0.05 if quick else 0.3
            ),
        )
        if mm:
            result["matmul_peak"] = mm
            peak = mm["gflops"]
    schedule = (
        models.Schedule(1, 1, 0.0) if quick else models.Schedule(3, 5, 1.0) if cuda else models.Schedule(1, 3, 0.0)
    )
    if cuda and quick:
        schedule = models.Schedule(2, 2, 0.2)
    cases = models.model_cases(device, quick)
    for name in MODEL_SECTIONS:
        if name in sections:
            row = section(
                name,
                functools.partial(
                    models.bench_model, cases[name], device, schedule, peak, opts.compile, opts.compile_mode
                ),
            )
            if row:
                result.setdefault("models", {})[name] = row
    with tempfile.TemporaryDirectory(prefix="fcnlab-bench-data-") as tmp:
        if "pipeline" in sections:
            result["pipeline"] = section("pipeline", lambda: _pipeline(opts, device, cases, Path(tmp))) or {}
        if "evaluator" in sections:
            labels = None if (quick or opts.data is None) else Path(opts.data) / "p2_data" / "validation"
            n_synthetic = 5 if quick else 50
            ev = section("evaluator", lambda: evaluator.bench_evaluator(labels, n_synthetic=n_synthetic))
            if ev:
                result["evaluator"] = ev
    if "tsne" in sections:
        ts = section("tsne", lambda: tsne_time.bench_tsne(200 if quick else 2500))
        if ts:
            result["tsne"] = ts
    result["comparisons"] = _comparisons(result)
    result["env"]["loadavg_end"] = _loadavg()
    return result


def _loadavg() -> list[float] | None:
    """1/5/15-minute load averages (a busy shared machine makes every CPU number slower)."""
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except OSError:
        return None


#: Synthetic epochs on a GPU without ``--data``: P1's full 20,000 images and 256 P2 tiles (32 steps of 8).
#: An epoch's fixed costs (its first batch, which nothing overlaps, and the closing sync) then weigh about as
#: little as in a real epoch (the earlier 64 tiles made an epoch of 8 steps).
GPU_SYNTHETIC_EPOCH = (20000, 256)


def _pipeline(opts: BenchOptions, device: torch.device, cases: dict[str, Any], tmp: Path) -> dict[str, Any]:
    """Loader and end-to-end numbers for P1 ``vgg16_bn`` and P2 ``fcn8s_resnet34``."""
    from fcnlab.bench import pipeline

    cuda, quick = device.type == "cuda", opts.quick
    if quick:
        p1_limit, p2_limit, repeats = 8, 4, 1
    elif cuda:
        p1_limit, p2_limit, repeats = (0, 0, 2) if opts.data else (*GPU_SYNTHETIC_EPOCH, 2)
    else:
        p1_limit, p2_limit, repeats = 512, 12, 1
    p2_case = cases["fcn8s_resnet34"]
    if opts.data is not None:
        folders = pipeline.course_folders(Path(opts.data))
    else:
        opts.log("pipeline: writing a synthetic training set (no --data)")
        folders = pipeline.synthetic_folders(tmp, p1_limit, p2_limit, p2_case.size)
    out: dict[str, Any] = {}
    for case, folder, limit in ((cases["vgg16_bn"], folders.p1_train, p1_limit), (p2_case, folders.p2_train, p2_limit)):
        row = pipeline.bench_epoch(
            case, device, folder, limit, repeats, compile_mode=opts.compile_mode if opts.compile else None
        )
        row["data"] = "synthetic" if folders.synthetic else str(folder)
        out[case.name] = row
        opts.log(
            f"pipeline {case.name}: e2e {row['e2e_img_per_s']} img/s, pure {row['pure_img_per_s']} "
            f"img/s, loader {row['loader_img_per_s']} img/s"
        )
    return out
