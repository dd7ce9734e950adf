"""fcnlab's real training path, timed: data-loader throughput alone and end-to-end epochs vs pure model steps.

The epoch is :func:`fcnlab.training.loop.train_one_epoch` itself on a :class:`~fcnlab.training.state.TrainState` built
by :func:`fcnlab.training.state.build_state`, as training builds it (decoded-data cache,
:class:`~fcnlab.data.prefetch.Prefetcher`, ``Task.prepare_train`` batch augmentation on the device, autocast,
training's optimizer and scheduler), so
the number measures what ``fcnlab classify|segment train`` does. The pure-compute reference runs the same
model, optimizer and batch size on one resident prepared batch.
"""

from __future__ import annotations

import contextlib
import gc
import io
import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from fcnlab.bench.models import ModelCase, TrainStep, case_config, channels_last
from fcnlab.bench.sections import FULL_TRAIN_SIZE
from fcnlab.bench.timing import PeakMemory, stopwatch, sync
from fcnlab.data.prefetch import Prefetcher
from fcnlab.data.resident import is_resident
from fcnlab.errors import DataError
from fcnlab.models.memory_format import to_channels_last, use_channels_last
from fcnlab.runtime.distributed import DistInfo
from fcnlab.tasks import make_task
from fcnlab.training.loop import train_one_epoch
from fcnlab.training.state import TrainState, build_state, epoch_batches, fresh_accum


@dataclass(frozen=True)
class DataFolders:
    """Training folders for the pipeline benchmarks (real course data or a synthetic stand-in)."""

    p1_train: Path
    p2_train: Path
    synthetic: bool


def course_folders(root: Path) -> DataFolders:
    """The course layout under ``root`` (the ``dlcv`` folder); a DataError names what is missing."""
    p1, p2 = root / "p1_data" / "train_50", root / "p2_data" / "train"
    for folder in (p1, p2):
        if not folder.is_dir():
            raise DataError(f"--data {root}: {folder} does not exist; give the folder holding p1_data/ and p2_data/")
    return DataFolders(p1, p2, synthetic=False)


def synthetic_folders(workdir: Path, p1_images: int, p2_tiles: int, p2_size: int) -> DataFolders:
    """Write small synthetic P1/P2 training sets in the course's formats under ``workdir``."""
    from fcnlab.data.synthetic import make_classification_data, make_segmentation_data

    per_class = max(1, -(-p1_images // 50))
    make_classification_data(workdir / "p1", num_classes=50, train_per_class=per_class, val_per_class=1, size=32)
    make_segmentation_data(workdir / "p2", n_train=p2_tiles, n_val=1, size=p2_size)
    return DataFolders(workdir / "p1" / "train_50", workdir / "p2" / "train", synthetic=True)


def build_bench_state(
    case: ModelCase,
    device: torch.device,
    train_dir: Path,
    limit: int,
    run_dir: Path,
    cache: str = "auto",
    compile_mode: str | None = None,
) -> tuple[TrainState, float]:
    """A single-process TrainState built by :func:`fcnlab.training.state.build_state`, as training builds it; also
    the data decode seconds. The data is resident on a GPU when it fits (``resident: true``, as the GPU
    recipes run); ``compile_mode`` (None: eager) compiles the model as ``--compile true`` does."""
    from fcnlab.data.resident import make_resident
    from fcnlab.models import build_model

    cfg = case_config(
        case,
        device,
        data=str(train_dir),
        val=str(train_dir),
        limit=limit,
        cache=cache,
        epochs=2,
        resident=True,
        compile=compile_mode is not None,
        compile_mode=compile_mode or "default",
    )
    task = make_task(cfg)
    with stopwatch() as load:
        data = task.load_train()
        data, _ = make_resident(data, device, cfg.resident)
    torch.manual_seed(cfg.seed)
    model = to_channels_last(
        build_model(cfg.model, cfg.num_classes).to(device),
        use_channels_last(cfg.channels_last, cfg.model, cfg.image_size, device),
    )
    state = build_state(cfg, task, run_dir, model, device, DistInfo(), data, None)
    return state, load["seconds"]


def _epoch_images(state: TrainState, epoch: int) -> int:
    return sum(len(b) for b in epoch_batches(len(state.train_data), state.cfg, epoch, state.dist))


def _timed_epoch(state: TrainState, epoch: int) -> float:
    """Seconds of one :func:`train_one_epoch` call (its progress lines are swallowed)."""
    state.step_in_epoch, state.epoch_accum = 0, fresh_accum()
    sync(state.device)
    t0 = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):
        train_one_epoch(state, epoch)
    sync(state.device)
    return time.perf_counter() - t0


def loader_throughput(state: TrainState, epoch: int, min_seconds: float) -> float:
    """Images/s of the data path alone: Prefetcher gather (+ pinning on CUDA), copy, ``prepare_train``."""
    dev, task, cfg = state.device, state.task, state.cfg
    images, passes = 0, 0
    sync(dev)
    t0 = time.perf_counter()
    while passes == 0 or (time.perf_counter() - t0 < min_seconds and passes < 50):
        batches = epoch_batches(len(state.train_data), cfg, epoch + passes, state.dist)
        for x, y in Prefetcher(state.train_data, batches, dev.type == "cuda"):
            x = x.to(dev, non_blocking=True)
            y = y.to(dev, non_blocking=True)
            x, y = task.prepare_train(x, y, state.gen)
            x = channels_last(x, cfg, dev)
            images += len(x)
        passes += 1
    sync(dev)
    return images / max(time.perf_counter() - t0, 1e-9)


def bench_epoch(
    case: ModelCase,
    device: torch.device,
    train_dir: Path,
    limit: int,
    repeats: int = 1,
    cache: str = "auto",
    compile_mode: str | None = None,
) -> dict[str, Any]:
    """End-to-end epoch img/s (fcnlab's loop) vs pure model steps at the same batch size; loader alone.

    One warm-up epoch, then ``repeats`` rounds of (timed epoch, as many timed pure steps); medians reported.
    """
    with tempfile.TemporaryDirectory(prefix="fcnlab-bench-run-") as tmp:
        state, load_s = build_bench_state(case, device, train_dir, limit, Path(tmp), cache, compile_mode)
        resident = is_resident(state.train_data)
        n_data = len(state.train_data)
        with PeakMemory(device) as mem:
            warm_s = _timed_epoch(state, 0)
            x, y = state.train_data.batch(epoch_batches(n_data, state.cfg, 0, state.dist)[0])
            x, y = state.task.prepare_train(x.to(device), y.to(device), state.gen)
            x = channels_last(x, state.cfg, device)
            step = TrainStep(state.model, state.task, state.cfg, device, x, y, state.optimizer, state.scaler)
            e2e, pure = [], []
            for r in range(max(1, repeats)):
                n_img = _epoch_images(state, 1 + r)
                n_steps = len(epoch_batches(n_data, state.cfg, 1 + r, state.dist))
                e2e.append(n_img / _timed_epoch(state, 1 + r))
                sync(device)
                t0 = time.perf_counter()
                for _ in range(n_steps):
                    step()
                sync(device)
                pure.append(n_steps * case.batch / (time.perf_counter() - t0))
            loader = loader_throughput(state, 1 + repeats, min_seconds=1.0)
        cfg = state.cfg
        del state, step, x, y
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()
    e2e_rate, pure_rate = statistics.median(e2e), statistics.median(pure)
    full = FULL_TRAIN_SIZE[case.task]
    return {
        "model": case.name,
        "task": case.task,
        "input": f"3x{case.size}x{case.size}",
        "batch": case.batch,
        "images_per_epoch": n_data,
        "cache": cfg.cache,
        "resident": resident,
        "compile_mode": compile_mode,
        "decode_seconds": round(load_s, 2),
        "warmup_epoch_seconds": round(warm_s, 2),
        "loader_img_per_s": round(loader, 2),
        "e2e_img_per_s": round(e2e_rate, 3),
        "pure_img_per_s": round(pure_rate, 3),
        "e2e_over_pure": round(e2e_rate / pure_rate, 3),
        "e2e_windows": [round(v, 3) for v in e2e],
        "pure_windows": [round(v, 3) for v in pure],
        "projected_minutes_50_epochs_train_only": round(50 * full / e2e_rate / 60, 1),
        "peak_gpu_mb": None if mem.gpu_mb is None else round(mem.gpu_mb, 1),
        "peak_rss_mb": None if mem.rss_mb is None else round(mem.rss_mb, 1),
    }
