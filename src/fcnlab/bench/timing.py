"""Measuring primitives of ``fcnlab bench``: device sync, throughput windows, peak memory, FLOPs, matmul peak.

Every timed region starts and ends with :func:`sync` (``torch.cuda.synchronize`` on CUDA, no-op on the CPU),
so asynchronous GPU work is counted in the window that launched it. Throughput is measured in windows of
several steps after warm-up (one sync per window, not per step) and the median window is reported.
"""

from __future__ import annotations

import contextlib
import math
import os
import statistics
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import torch
from torch.utils.flop_counter import FlopCounterMode


def sync(device: torch.device) -> None:
    """Wait until every kernel queued on ``device`` has finished (no-op on the CPU)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@dataclass
class Throughput:
    """Items per second over timed windows (median reported), with the per-step time and the raw windows."""

    items_per_s: float
    step_ms: float
    steps: int
    windows: list[float] = field(default_factory=list)
    cpu_util: float | None = None  # process CPU time / (wall x torch threads); well below 1: a busy machine

    def to_dict(self) -> dict[str, float | int | list[float] | None]:
        """JSON-ready dict (rounded)."""
        return {
            "items_per_s": round(self.items_per_s, 4),
            "step_ms": round(self.step_ms, 3),
            "steps": self.steps,
            "windows_items_per_s": [round(w, 4) for w in self.windows],
            "cpu_util": None if self.cpu_util is None else round(self.cpu_util, 3),
        }


def cpu_seconds(fn: Callable[[], object], reps: int) -> float:
    """Median process CPU seconds of ``fn()`` after one warm-up call."""
    fn()
    times = []
    for _ in range(reps):
        t0 = time.process_time()
        fn()
        times.append(time.process_time() - t0)
    return statistics.median(times)


def measure_throughput(
    step: Callable[[], object],
    items_per_step: int,
    device: torch.device,
    *,
    warmup: int = 1,
    windows: int = 3,
    min_window_s: float = 0.0,
    max_steps_per_window: int = 200,
) -> Throughput:
    """Run ``step`` ``warmup`` times, then ``windows`` timed windows; return the median items/s.

    The first window's step count is 1; later windows hold enough steps to last ``min_window_s`` seconds
    (at most ``max_steps_per_window``), so fast GPU steps are timed in bulk with one sync per window.
    """
    for _ in range(warmup):
        step()
    sync(device)
    rates: list[float] = []
    per_step: list[float] = []
    n = 1
    total_steps = 0
    wall0, cpu0 = time.perf_counter(), time.process_time()
    for _ in range(max(1, windows)):
        t0 = time.perf_counter()
        for _ in range(n):
            step()
        sync(device)
        dt = max(time.perf_counter() - t0, 1e-9)
        rates.append(n * items_per_step / dt)
        per_step.append(dt / n)
        total_steps += n
        if min_window_s > 0:
            n = int(min(max_steps_per_window, max(1, math.ceil(min_window_s / (dt / n)))))
    util = None
    if device.type == "cpu":
        wall = max((time.perf_counter() - wall0) * torch.get_num_threads(), 1e-9)
        util = (time.process_time() - cpu0) / wall
    return Throughput(statistics.median(rates), 1000 * statistics.median(per_step), total_steps, rates, util)


def count_flops(fn: Callable[[], object]) -> tuple[int, object]:
    """Run ``fn`` once under :class:`torch.utils.flop_counter.FlopCounterMode`; return (FLOPs, result).

    FLOPs count a multiply-add as 2 (matmul/conv formulas of PyTorch); a forward+backward call counts both.
    """
    counter = FlopCounterMode(display=False)
    with counter:
        out = fn()
    return int(counter.get_total_flops()), out


def _rss_bytes() -> int | None:
    """Current resident set size of this process (Linux ``/proc``; None elsewhere)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return None


class PeakMemory:
    """Peak memory of a region: GPU bytes allocated by torch (CUDA) and this process's RSS (sampled).

    ``with PeakMemory(device) as mem: ...`` then ``mem.gpu_mb`` (None on CPU) and ``mem.rss_mb`` (peak RSS
    seen by a sampling thread every ``interval`` seconds; None where ``/proc`` is missing).
    """

    def __init__(self, device: torch.device, interval: float = 0.005):
        self.device, self.interval = device, interval
        self.gpu_mb: float | None = None
        self.rss_mb: float | None = None
        self._peak = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _sample(self) -> None:
        while not self._stop.is_set():
            rss = _rss_bytes()
            if rss is None:
                return
            self._peak = max(self._peak, rss)
            self._stop.wait(self.interval)

    def __enter__(self) -> PeakMemory:
        if self.device.type == "cuda":
            sync(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
        self._peak = _rss_bytes() or 0
        self._thread = threading.Thread(target=self._sample, daemon=True, name="fcnlab-bench-rss")
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        if self.device.type == "cuda":
            sync(self.device)
            self.gpu_mb = torch.cuda.max_memory_allocated(self.device) / 2**20
        now = _rss_bytes()
        if now is not None:
            self.rss_mb = max(self._peak, now) / 2**20


@contextlib.contextmanager
def stopwatch() -> Iterator[dict[str, float]]:
    """``with stopwatch() as t: ...`` then ``t["seconds"]`` holds the wall time of the block."""
    out: dict[str, float] = {}
    t0 = time.perf_counter()
    try:
        yield out
    finally:
        out["seconds"] = time.perf_counter() - t0


def matmul_peak(
    device: torch.device, dtype: torch.dtype, size: int, windows: int = 5, min_window_s: float = 0.2
) -> dict[str, float | int | str]:
    """Best GFLOP/s of a square ``size`` x ``size`` matmul on ``device`` in ``dtype`` (the device's peak).

    On CUDA the matmul runs with the process's TF32 setting; the best window is reported because the peak
    is a property of the device, not of a noisy moment.
    """
    gen = torch.Generator(device="cpu").manual_seed(0)
    a = torch.randn(size, size, generator=gen).to(device=device, dtype=dtype)
    b = torch.randn(size, size, generator=gen).to(device=device, dtype=dtype)
    out = torch.empty(size, size, device=device, dtype=dtype)
    tp = measure_throughput(
        lambda: torch.mm(a, b, out=out),
        1,
        device,
        warmup=2,
        windows=windows,
        min_window_s=min_window_s,
        max_steps_per_window=1000,
    )
    best = max(tp.windows)
    flops = 2.0 * size**3
    return {
        "gflops": round(best * flops / 1e9, 2),
        "median_gflops": round(tp.items_per_s * flops / 1e9, 2),
        "dtype": str(dtype).replace("torch.", ""),
        "size": size,
    }
