"""The training engine shared by both tasks: ``fit`` -> ``train_one_epoch`` / ``Task.evaluate``.

Features: CUDA autocast (bf16, or fp16 with GradScaler), channels_last, optional torch.compile before DDP,
torchrun DDP with DistributedSampler (``set_epoch`` every epoch), per-epoch ``metrics.csv`` and
``timing.csv``, atomic ``last.pt``/``best.pt``, SIGINT/SIGTERM -> resumable checkpoint after the current
step (exit 130/143), exact resume (RNG states and data position saved), NaN/Inf loss detection.

On a GPU the training step never waits for the host: the loss, accuracy counts and the NaN/Inf check
stay on the device and are read every ``sync_every`` steps (:func:`sync_interval`: ``log_every`` on GPUs,
every step on the CPU). Under DDP the ranks agree on stopping (signal or NaN/Inf) at those same steps, so a
SIGINT/SIGTERM is honoured within ``sync_every`` steps there (after the current step in one process).
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import math
import os
import platform
import random
import signal
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DistributedSampler

from fcnlab import distributed as dist_utils
from fcnlab.atomic import atomic_link, atomic_write_text, make_folder
from fcnlab.checkpoint import (
    BackgroundSaver,
    load_checkpoint,
    remove_stale_temp_files,
    rng_state,
    save_checkpoint,
    set_rng_state,
    unwrap,
)
from fcnlab.config import TrainConfig, from_dict, save_yaml
from fcnlab.errors import ConfigError, FcnlabError, TrainingDiverged
from fcnlab.memory_format import to_channels_last, use_channels_last
from fcnlab.tasks import Prefetcher, Task, make_task  # Prefetcher: shared with Task.evaluate

METRIC_COLUMNS = ("epoch", "lr", "train_loss", "train_acc", "val_loss", "val_acc", "val_miou")


class Interrupted(FcnlabError):
    """Training stopped by SIGINT/SIGTERM after saving a resumable checkpoint."""

    def __init__(self, message: str, exit_code: int):
        super().__init__(message)
        self.exit_code = exit_code


# ----------------------------------------------------------------------------------------------- set-up
def select_device(name: str, local_rank: int = 0) -> torch.device:
    """``auto`` -> CUDA (this process's GPU under torchrun) when present, else CPU."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ConfigError("option --device: CUDA was requested but no GPU is visible; use --device cpu")
        if name == "cuda":
            name = f"cuda:{local_rank}"
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ConfigError(f"option --device: {name!r} is not a device; use auto, cpu, cuda or cuda:N") from None
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        raise ConfigError(f"option --device: {name} does not exist ({torch.cuda.device_count()} GPU(s) visible)")
    return device


def amp_dtype(cfg: TrainConfig, device: torch.device) -> torch.dtype | None:
    """Autocast dtype: bf16 on CUDA by default, none on CPU unless asked for."""
    mode = cfg.amp
    if mode == "auto":
        mode = "bf16" if device.type == "cuda" else "off"
    return {"bf16": torch.bfloat16, "fp16": torch.float16, "off": None}[mode]


def seed_everything(seed: int, deterministic: bool) -> None:
    """Seed python, numpy and torch; optionally force deterministic algorithms."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.benchmark = False
    elif torch.cuda.is_available():
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True


def build_optimizer(model: torch.nn.Module, cfg: TrainConfig, device: torch.device) -> torch.optim.Optimizer:
    """SGD (momentum) or AdamW over trainable parameters only (frozen upsamplers stay out)."""
    from fcnlab.models import trainable_param_groups

    groups = trainable_param_groups(model, lr=cfg.lr, weight_decay=cfg.weight_decay)
    # fused kernels: on CUDA one launch for all parameters; on the CPU a fifth less time per step than the
    # for-loop (188 vs 230-250 ms for FCN32s-VGG16's 134M parameters on 2 cores)
    fused = {"fused": True} if device.type in ("cuda", "cpu") else {}
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum, **fused)
    return torch.optim.AdamW(groups, lr=cfg.lr, **fused)


def lr_factor(step: int, cfg: TrainConfig, steps_per_epoch: int) -> float:
    """Multiplier of the peak LR at optimizer step ``step``: linear warm-up, then cosine/poly/step/constant.

    ``poly`` is DeepLab's ``(1 - t / T) ** 0.9`` over the steps after warm-up.
    """
    warm = int(cfg.warmup_epochs * steps_per_epoch)
    if step < warm:
        return (step + 1) / warm
    if cfg.scheduler == "constant":
        return 1.0
    if cfg.scheduler == "step":
        return cfg.gamma ** ((step // steps_per_epoch) // max(cfg.step_size, 1))
    total = max(cfg.epochs * steps_per_epoch - warm, 1)
    if cfg.scheduler == "poly":
        return (1.0 - min(step - warm, total) / total) ** 0.9
    return 0.5 * (1.0 + math.cos(math.pi * min(step - warm, total) / total))


def environment() -> dict[str, Any]:
    """Hardware and library versions, stored in the run folder for the report."""
    import torchvision

    env = {"python": platform.python_version(), "torch": torch.__version__,
           "torchvision": torchvision.__version__, "platform": platform.platform(),
           "cpu": platform.processor() or platform.machine(), "cpu_count": os.cpu_count(),
           "torch_threads": torch.get_num_threads(), "cuda": torch.cuda.is_available()}
    if torch.cuda.is_available():
        env["gpu"] = torch.cuda.get_device_name(0)
        env["cuda_version"] = torch.version.cuda
    return env


# ---------------------------------------------------------------------------------------------- logging
class MetricsLog:
    """``metrics.csv`` (deterministic numbers only) and ``timing.csv`` (wall times), rewritten atomically."""

    def __init__(self, run_dir: Path):
        self.path = run_dir / "metrics.csv"
        self.timing_path = run_dir / "timing.csv"
        self.rows: list[dict[str, Any]] = self._read(self.path)
        self.timing: list[dict[str, Any]] = self._read(self.timing_path)

    @staticmethod
    def _read(path: Path) -> list[dict[str, Any]]:
        if not path.is_file():
            return []
        with open(path, newline="") as f:
            return list(csv.DictReader(f))

    @staticmethod
    def _write(path: Path, columns: tuple[str, ...] | list[str], rows: list[dict[str, Any]]) -> None:
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=list(columns), extrasaction="ignore", lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        atomic_write_text(path, buf.getvalue())

    def truncate(self, epochs_done: int) -> None:
        """Drop rows beyond the checkpoint being resumed (they were written after it)."""
        self.rows = [r for r in self.rows if int(r["epoch"]) <= epochs_done]
        self.timing = [r for r in self.timing if int(r["epoch"]) <= epochs_done]

    def append(self, row: dict[str, Any], timing: dict[str, Any]) -> None:
        fmt = {k: (f"{v:.6f}" if isinstance(v, float) else v) for k, v in row.items()}
        extra = sorted(k for k in fmt if k.startswith("iou_"))
        self.rows.append(fmt)
        self.timing.append(timing)
        self._write(self.path, list(METRIC_COLUMNS) + extra, self.rows)
        self._write(self.timing_path, list(timing), self.timing)


class Progress:
    """tqdm bar with ETA on a terminal, plain log lines every ``log_every`` steps otherwise."""

    def __init__(self, enabled: bool, total: int, initial: int, desc: str, log_every: int):
        self.enabled, self.total, self.log_every, self.desc = enabled, total, log_every, desc
        self.bar = None
        self.start = time.perf_counter()
        self.step = initial
        if enabled and sys.stderr.isatty():
            from tqdm import tqdm

            self.bar = tqdm(total=total, initial=initial, desc=desc, dynamic_ncols=True, leave=False)

    def update(self, loss: float | None) -> None:
        self.step += 1
        if not self.enabled:
            return
        if self.bar is not None:
            self.bar.update(1)
            if loss is not None:
                self.bar.set_postfix(loss=f"{loss:.4f}")
        elif self.log_every and (self.step % self.log_every == 0 or self.step == self.total):
            el = time.perf_counter() - self.start
            print(f"{self.desc} step {self.step}/{self.total}" + (f" loss {loss:.4f}" if loss is not None else "")
                  + f" ({el:.0f}s)", flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


# ----------------------------------------------------------------------------------------------- state
@dataclass
class TrainState:
    """Everything ``train_one_epoch`` needs and a checkpoint saves."""

    cfg: TrainConfig
    task: Task
    run_dir: Path
    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LambdaLR
    scaler: torch.amp.GradScaler
    device: torch.device
    amp: torch.dtype | None
    gen: torch.Generator
    dist: dist_utils.DistInfo
    train_data: Any
    val_data: Any
    epoch: int = 0  # completed epochs
    step_in_epoch: int = 0
    global_step: int = 0
    best_metric: float = -math.inf
    best_epoch: int = 0
    epoch_accum: dict[str, float] = field(default_factory=lambda: {"loss": 0.0, "correct": 0.0, "count": 0.0,
                                                                   "batches": 0.0})
    stop_signal: int | None = None
    epoch_lr: float | None = None  # learning rate at the start of the current epoch (metrics.csv's lr)
    last_saved: str = ""  # where the newest last.pt stands, for messages ("end of epoch 3")
    saver: BackgroundSaver = field(default_factory=BackgroundSaver)  # epoch-end checkpoints in the background

    def checkpoint(self, metrics: dict[str, float] | None = None,
                   rng_ranks: list[dict[str, Any]] | None = None) -> dict[str, Any]:
        """The checkpoint dict for the current position (``rng_ranks``: every rank's RNG states under DDP)."""
        ckpt = dict(task=self.cfg.task, model_name=self.cfg.model, num_classes=self.cfg.num_classes,
                    model=unwrap(self.model).state_dict(), optimizer=self.optimizer.state_dict(),
                    scheduler=self.scheduler.state_dict(), scaler=self.scaler.state_dict(),
                    epoch=self.epoch, step_in_epoch=self.step_in_epoch, global_step=self.global_step,
                    best_metric=self.best_metric, best_epoch=self.best_epoch, epoch_accum=dict(self.epoch_accum),
                    epoch_lr=self.epoch_lr, config=self.cfg.to_dict(), rng=rng_state(self.gen),
                    metrics=metrics or {}, world_size=self.dist.world_size)
        if rng_ranks is not None:
            ckpt["rng_ranks"] = rng_ranks
        return ckpt

    def save(self, name: str, metrics: dict[str, float] | None = None, then: Any = None) -> Path:
        """Write ``run_dir/name`` atomically. Under DDP every rank must call it (RNG states are gathered).

        With ``then`` (a callable run once the file is on disk) the write goes to the background saver and
        training continues meanwhile; without it the call returns when the file is on disk.
        """
        path = self.run_dir / name
        rng_ranks = dist_utils.gather_to_main(rng_state(self.gen)) if self.dist.enabled else None
        if self.dist.is_main:
            if then is not None:
                self.saver.submit(path, self.checkpoint(metrics, rng_ranks), then)
            else:
                self.saver.wait()
                save_checkpoint(path, **self.checkpoint(metrics, rng_ranks))
        self.last_saved = (f"the end of epoch {self.epoch}" if self.step_in_epoch == 0
                           else f"epoch {self.epoch + 1} step {self.step_in_epoch}")
        return path


def epoch_batches(n: int, cfg: TrainConfig, epoch: int, dist: dist_utils.DistInfo,
                  factors: np.ndarray | None = None) -> list[torch.Tensor]:
    """This rank's batches of sample indices for ``epoch`` (DistributedSampler with ``set_epoch``).

    With repeat ``factors`` (``sampling: rare``) the epoch's ``n`` draws favour the samples with larger
    factors (:func:`fcnlab.data.sampling.epoch_indices`, seeded by seed and epoch), split over the ranks.
    """
    if factors is not None:
        from fcnlab.data.sampling import epoch_indices, shard

        order = shard(epoch_indices(factors, epoch, cfg.seed, n), dist.rank, dist.world_size)
    else:
        sampler = DistributedSampler(range(n), num_replicas=dist.world_size, rank=dist.rank, shuffle=True,
                                     seed=cfg.seed, drop_last=False)
        sampler.set_epoch(epoch)
        order = torch.tensor(list(sampler), dtype=torch.int64)
    batches = list(order.split(cfg.batch_size))
    if len(batches) > 1 and len(batches[-1]) < 2:  # BatchNorm cannot train on a single sample
        batches.pop()
    return batches


def sync_interval(cfg: TrainConfig, device: torch.device) -> int:
    """Steps between the training loop's reads of device values (``sync_every``).

    Every step on the CPU (nothing runs ahead there); ``log_every`` steps on a GPU, where each read waits
    for every queued kernel. Under DDP the ranks agree on stopping only at these steps (and the last step of
    an epoch); they depend only on the step index, so every rank takes part in the same all-reduces.
    """
    return 1 if device.type == "cpu" else max(1, cfg.log_every)


_NO_BAD_STEP = 2**62  # "no NaN/Inf loss yet" in the stop flags (larger than any step index)


def _agree_on_stop(flags: torch.Tensor) -> None:
    """Element-wise minimum over all ranks, in place, of ``[keep going (1/0), first NaN/Inf step]``.

    Every rank goes on only if all do, and all name the earliest bad step. No-op in a single process; the
    caller reads the result (one host sync together with the loss sums).
    """
    if dist_utils.is_dist():
        torch.distributed.all_reduce(flags, op=torch.distributed.ReduceOp.MIN)


def _read(values: Sequence[torch.Tensor]) -> list[float]:
    """Scalars on the device as Python floats, in one device-to-host copy (one host sync)."""
    return torch.stack([v.reshape(()).to(torch.float64) for v in values]).tolist()


# ----------------------------------------------------------------------------------------------- loops
def train_one_epoch(state: TrainState, epoch: int) -> dict[str, float]:
    """Train one epoch from ``state.step_in_epoch`` (0, or where an interrupted run stopped).

    Device values (loss and accuracy sums, the first NaN/Inf step) are read only at sync steps: every
    :func:`sync_interval` steps and the epoch's last step; in a single process also at the step after which
    a SIGINT/SIGTERM arrived. Under DDP the stop flags are all-reduced at the sync steps only, on every rank
    at the same step indices, so a signal is honoured within ``sync_every`` steps and every rank stops (or
    raises the NaN/Inf error) at the same step.
    """
    cfg, task, model, dev = state.cfg, state.task, state.model, state.device
    model.train()
    batches = epoch_batches(len(state.train_data), cfg, epoch, state.dist, task.sample_factors)
    start = state.step_in_epoch
    acc = state.epoch_accum
    progress = Progress(state.dist.is_main, len(batches), start, f"epoch {epoch + 1}/{cfg.epochs}", cfg.log_every)
    loss_dev = torch.zeros((), dtype=torch.float64, device=dev)
    correct_dev = torch.zeros((), dtype=torch.float64, device=dev)
    bad_step = torch.full((), -1, dtype=torch.int64, device=dev)
    count, pending = 0.0, 0
    sync_every = sync_interval(cfg, dev)
    channels_last = use_channels_last(cfg, dev)
    try:
        for i, (x, y) in enumerate(Prefetcher(state.train_data, batches[start:], dev.type == "cuda"), start=start):
            x = x.to(dev, non_blocking=True)
            y = y.to(dev, non_blocking=True)
            x, y = task.prepare_train(x, y, state.gen)
            x = to_channels_last(x, channels_last)
            with torch.autocast(dev.type, dtype=state.amp or torch.float32, enabled=state.amp is not None):
                logits = model(x)
                loss = task.loss(logits.float(), y)
            bad_step.masked_fill_((~torch.isfinite(loss)) & (bad_step < 0), i)  # no host sync
            state.optimizer.zero_grad(set_to_none=True)
            state.scaler.scale(loss).backward()
            if cfg.grad_clip:
                state.scaler.unscale_(state.optimizer)
                torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            state.scaler.step(state.optimizer)
            state.scaler.update()
            state.scheduler.step()
            state.global_step += 1
            with torch.no_grad():
                c, n = task.correct(logits.detach(), y)
                loss_dev += loss.detach().double()
                correct_dev += c.double()
                count += n
            pending += 1
            state.step_in_epoch = i + 1
            last = i + 1 == len(batches)
            signalled = state.stop_signal is not None
            # sync steps depend on the step index only, so under DDP every rank joins the same all-reduces;
            # one process may also stop at once (nothing to agree on)
            stop = False
            if (i + 1) % sync_every == 0 or last or (signalled and not state.dist.enabled):
                flags = torch.stack([torch.full_like(bad_step, int(not signalled)),  # fills: no host-to-device copy
                                     torch.where(bad_step >= 0, bad_step, _NO_BAD_STEP)])
                if state.dist.enabled:  # every rank takes the same decision at the same step
                    _agree_on_stop(flags)
                loss_v, correct_v, go, first_bad = _read([loss_dev, correct_dev, flags[0], flags[1]])  # one sync
                if first_bad < _NO_BAD_STEP:
                    _diverged(state, epoch, int(first_bad))
                stop = go == 0
                acc["loss"] += loss_v
                acc["correct"] += correct_v
                acc["count"] += count
                acc["batches"] += pending
                loss_dev.zero_()
                correct_dev.zero_()
                count, pending = 0.0, 0
                progress.update(acc["loss"] / max(acc["batches"], 1))
            else:
                progress.update(None)
            if stop and not last:
                state.save("last.pt")
                raise _interrupted(state)
    finally:
        progress.close()
    totals = torch.tensor([acc["loss"], acc["correct"], acc["count"], acc["batches"]], dtype=torch.float64,
                          device=dev)
    loss_sum, correct, n, n_batches = dist_utils.all_reduce_sum(totals).tolist()  # every rank's share under DDP
    return {"train_loss": loss_sum / max(n_batches, 1), "train_acc": correct / max(n, 1)}


def _diverged(state: TrainState, epoch: int, step: int) -> None:
    """Stop: the loss of ``step`` (0-based) was NaN/Inf. Nothing is saved, so last.pt stays good."""
    state.saver.wait()  # the previous epoch's checkpoint may still be being written in the background
    good = state.run_dir / "last.pt"
    if good.is_file():
        at = f" (saved at {state.last_saved})" if state.last_saved else ""
        where = f"last good checkpoint: {good}{at}, resume it with --resume {state.run_dir}"
    else:
        where = "no checkpoint was written yet"
    raise TrainingDiverged(f"loss became NaN/Inf at epoch {epoch + 1} step {step + 1}; {where}; lower --lr, "
                           f"set --grad-clip, or check the data")


def _interrupted(state: TrainState) -> Interrupted:
    """The exception for a SIGINT/SIGTERM stop, after ``last.pt`` was saved at the current position."""
    sig = state.stop_signal or signal.SIGTERM
    return Interrupted(f"stopped by {signal.Signals(sig).name} at {state.last_saved}; resumable checkpoint "
                       f"{state.run_dir / 'last.pt'}; continue with --resume {state.run_dir}",
                       130 if sig == signal.SIGINT else 143)


# -------------------------------------------------------------------------------------------------- fit
def prepare_run_dir(out: str | Path, resume: bool) -> Path:
    """Create the run folder; refuse to overwrite an existing run unless resuming it."""
    run_dir = Path(out)
    if resume:
        if not (run_dir / "last.pt").is_file():
            raise ConfigError(f"--resume {run_dir}: no last.pt in that folder to resume from")
        return run_dir
    if run_dir.is_dir() and any(run_dir.iterdir()):
        if (run_dir / "config.yaml").exists() and not (run_dir / "last.pt").exists():
            raise ConfigError(f"--out {run_dir}: holds a run that stopped before its first checkpoint; delete "
                              f"that folder or choose a new --out")
        what = "a run" if (run_dir / "config.yaml").exists() else "other files"
        raise ConfigError(f"--out {run_dir}: folder already holds {what}; pass --resume {run_dir} to continue "
                          f"it, or choose a new --out")
    return make_folder(run_dir)


def fit(cfg: TrainConfig | None, out: str | Path, resume: bool = False,
        overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """Train a model as ``cfg`` says, writing the run folder ``out``; returns the final summary dict.

    With ``resume=True`` the config comes from ``out/last.pt`` (``overrides`` such as ``epochs`` may
    extend it) and training continues exactly where it stopped: model, optimizer, scheduler, scaler,
    every RNG (torch, CUDA, numpy, python, augmentation; per rank under DDP) and the position in the
    epoch's data order are restored, so on the CPU with ``deterministic`` the result equals an
    uninterrupted run.
    """
    ckpt = None
    if resume:
        prepare_run_dir(out, True)
        ckpt = load_checkpoint(Path(out) / "last.pt")
        cfg = from_dict({**ckpt["config"], **(overrides or {})}, f"{out}/last.pt")
    if cfg is None:
        raise ConfigError("fit: give a config, or resume=True with a run folder")
    if cfg.data is None or cfg.val is None:
        raise ConfigError("options --data and --val are required (training and validation folders)")
    device_type = "cuda" if (cfg.device.startswith("cuda") or (cfg.device == "auto" and torch.cuda.is_available())) \
        else "cpu"
    dist = dist_utils.init_distributed(device_type)
    deterministic_before = torch.are_deterministic_algorithms_enabled()
    try:
        return _fit(cfg, Path(out), ckpt, dist, overrides or {})
    finally:
        torch.use_deterministic_algorithms(deterministic_before)
        dist_utils.shutdown()


def _fit(cfg: TrainConfig, out: Path, ckpt: dict[str, Any] | None, dist: dist_utils.DistInfo,
         overrides: dict[str, Any]) -> dict[str, Any]:
    resume = ckpt is not None
    device = select_device(cfg.device, dist.local_rank)
    if cfg.sync_bn and dist.enabled and device.type != "cuda":
        raise ConfigError("option sync_bn (--sync-bn): SyncBatchNorm works on GPUs only; drop --sync-bn for CPU "
                          "(gloo) runs")
    def prepare() -> Path:
        run_dir = prepare_run_dir(out, resume)
        if resume:
            remove_stale_temp_files(run_dir)  # left by a SIGKILL during a save
            last, best = run_dir / "last.pt", run_dir / "best.pt"
            if ckpt["best_epoch"] == ckpt["epoch"] and ckpt["step_in_epoch"] == 0 and not (
                    best.is_file() and os.path.samefile(last, best)):
                atomic_link(last, best)  # killed between saving last.pt and linking best.pt
        return run_dir

    run_dir = dist_utils.on_main(prepare, out)  # an error there stops every rank
    seed_everything(cfg.seed + dist.rank, cfg.deterministic)

    task = make_task(cfg)
    train_data = task.load_train()
    val_data = task.load_val()
    if dist.is_main:
        for name, d in (("train", train_data), ("val", val_data)):
            rep = getattr(d, "off_palette", None)
            if rep is not None and rep.summary():
                print(f"note ({name}): {rep.summary()}", flush=True)
        if task.name == "classify":  # p1 train holds byte-identical images under two labels
            from fcnlab.data.duplicates import check_labelled_images

            line = check_labelled_images(train_data.images, train_data.labels, train_data.files, cfg.data)
            if line:
                print(f"fcnlab: warning: {line}", file=sys.stderr, flush=True)

    from fcnlab.models import build_model

    kwargs = {} if cfg.learn_upsampling is None else {"learn_upsampling": cfg.learn_upsampling}
    model = build_model(cfg.model, cfg.num_classes, pretrained=cfg.pretrained and ckpt is None,
                        weights=cfg.weights if ckpt is None else None, **kwargs)
    if ckpt is not None:
        model.load_state_dict(ckpt["model"])
    model.to(device)
    if dist.is_main and not resume:
        atomic_write_text(run_dir / "model.txt", f"{model}\n")
        save_yaml(cfg, run_dir / "config.yaml")
        atomic_write_text(run_dir / "env.json", json.dumps(environment(), indent=2) + "\n")
    elif dist.is_main and overrides:
        save_yaml(cfg, run_dir / "config.yaml")  # e.g. --epochs extended on resume
    if cfg.sync_bn and dist.enabled:
        model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
    model = to_channels_last(model, use_channels_last(cfg, device))
    optimizer = build_optimizer(model, cfg, device)
    steps_per_epoch = len(epoch_batches(len(train_data), cfg, 0, dist, task.sample_factors))
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: lr_factor(s, cfg, steps_per_epoch))
    amp = amp_dtype(cfg, device)
    scaler = torch.amp.GradScaler(device.type, enabled=amp == torch.float16)
    eval_model = torch.compile(model) if cfg.compile else model  # compile before DDP
    train_model = eval_model
    if dist.enabled:
        train_model = torch.nn.parallel.DistributedDataParallel(
            eval_model, device_ids=[device.index] if device.type == "cuda" else None)
    gen = torch.Generator(device=device)
    gen.manual_seed(cfg.seed * 1000 + dist.rank)
    state = TrainState(cfg, task, run_dir, train_model, optimizer, scheduler, scaler, device, amp, gen, dist,
                       train_data, val_data)
    if ckpt is not None:
        _restore(state, ckpt)
    log = MetricsLog(run_dir)
    log.truncate(state.epoch)
    hooks = _epoch_hooks(state)
    previous = _install_signal_handlers(state)
    try:
        while state.epoch < cfg.epochs:
            stop = state.stop_signal is not None  # a signal during the last evaluation: last.pt is up to date
            if dist.enabled:  # all ranks stop here, or none
                stop = bool(dist_utils.max_over_processes(torch.tensor([int(stop)], device=device))[0])
            if stop:
                raise _interrupted(state)
            epoch = state.epoch
            t0 = time.perf_counter()
            if state.step_in_epoch == 0 or state.epoch_lr is None:
                state.epoch_lr = optimizer.param_groups[0]["lr"]
            stats = train_one_epoch(state, epoch)
            train_time = time.perf_counter() - t0
            if dist.enabled:  # evaluate exactly the weights rank 0 saves (BN statistics differ per rank)
                dist_utils.broadcast_buffers(model)
            metrics, conf = task.evaluate(eval_model, val_data, device, dist.rank, dist.world_size, amp)
            state.epoch, state.step_in_epoch = epoch + 1, 0
            state.epoch_accum = {"loss": 0.0, "correct": 0.0, "count": 0.0, "batches": 0.0}
            row = {"epoch": epoch + 1, "lr": state.epoch_lr, **stats, **metrics}
            if task.name == "classify":
                row.pop("val_miou", None)
            value = metrics[task.metric]
            improved = not math.isnan(value) and value > state.best_metric
            if improved:
                state.best_metric, state.best_epoch = value, epoch + 1
            # checkpoint first, then the log: a SIGKILL in between leaves metrics.csv one row short at most
            # (the resumed run rewrites the row), never a row without its checkpoint
            timing = {"epoch": epoch + 1, "train_seconds": f"{train_time:.2f}",
                      "epoch_seconds": f"{time.perf_counter() - t0:.2f}",
                      "train_img_per_s": f"{len(train_data) / max(train_time, 1e-9):.2f}"}

            def after_save(row=row, timing=timing, improved=improved) -> None:
                if improved:  # same bytes as last.pt: a hard link, not a second 1 GB write
                    atomic_link(run_dir / "last.pt", run_dir / "best.pt")
                log.append(row, timing)

            # checkpoint first, then the log: a SIGKILL in between leaves metrics.csv one row short at most
            # (the resumed run rewrites the row), never a row without its checkpoint. The write runs in a
            # background thread (BackgroundSaver) while the next epoch trains.
            state.save("last.pt", metrics, then=after_save)  # every rank: RNG states are gathered
            if dist.is_main:
                for hook in hooks:
                    hook(epoch + 1, model, row, conf)
                shown = f"{task.metric} {value:.4f}"
                print(f"epoch {epoch + 1}/{cfg.epochs}: train_loss {stats['train_loss']:.4f} "
                      f"train_acc {stats['train_acc']:.4f} val_loss {metrics['val_loss']:.4f} {shown} "
                      f"({time.perf_counter() - t0:.1f}s)", flush=True)
        state.saver.wait()  # the last checkpoint and its log row are on disk
        summary = {"run_dir": str(run_dir), "best_epoch": state.best_epoch, task.metric: state.best_metric,
                   "epochs": state.epoch}
        if dist.is_main:
            print(f"done: best {task.metric} {state.best_metric:.6f} at epoch {state.best_epoch}; "
                  f"run folder {run_dir}", flush=True)
    finally:
        with contextlib.suppress(Exception):  # an error already propagating wins; the normal path waited above
            state.saver.wait()
        _restore_signal_handlers(previous)
        for hook in hooks:
            close = getattr(hook, "close", None)
            if close:
                close()
    return summary


def _restore(state: TrainState, ckpt: dict[str, Any]) -> None:
    """Put a freshly built TrainState at the position of a checkpoint (optimizer, scheduler, RNGs, data)."""
    dist = state.dist
    state.optimizer.load_state_dict(ckpt["optimizer"])
    state.scheduler.load_state_dict(ckpt["scheduler"])
    state.scaler.load_state_dict(ckpt["scaler"])
    state.epoch, state.step_in_epoch = ckpt["epoch"], ckpt["step_in_epoch"]
    state.global_step, state.best_metric, state.best_epoch = (ckpt["global_step"], ckpt["best_metric"],
                                                              ckpt["best_epoch"])
    state.epoch_accum = dict(ckpt.get("epoch_accum") or state.epoch_accum)
    state.epoch_lr = ckpt.get("epoch_lr")
    state.last_saved = (f"the end of epoch {state.epoch}" if state.step_in_epoch == 0
                        else f"epoch {state.epoch + 1} step {state.step_in_epoch}")
    saved_world = int(ckpt.get("world_size", 1))
    ranks = ckpt.get("rng_ranks")
    if ranks is not None and len(ranks) == dist.world_size:
        set_rng_state(ranks[dist.rank], state.gen)
    elif dist.world_size == saved_world == 1 or dist.rank == 0:
        set_rng_state(ckpt["rng"], state.gen)
    if dist.is_main:
        if saved_world != dist.world_size:
            print(f"note: the checkpoint was written by {saved_world} process(es), this run has "
                  f"{dist.world_size}: data order and augmentation differ from an uninterrupted run", flush=True)
        if state.epoch >= state.cfg.epochs:
            print(f"{state.run_dir}: training is already complete ({state.epoch} epochs); pass --epochs N to "
                  f"train longer", flush=True)
        else:
            print(f"resuming {state.run_dir} at epoch {state.epoch + 1} step {state.step_in_epoch}", flush=True)


def _epoch_hooks(state: TrainState) -> list[Any]:
    """Per-epoch side outputs of the main process: mask snapshots (P2) and TensorBoard."""
    hooks: list[Any] = []
    if not state.dist.is_main:
        return hooks
    if state.task.name == "segment":
        from fcnlab.snapshots import SnapshotHook

        hooks.append(SnapshotHook(state.cfg, state.run_dir, state.val_data, state.device, state.amp))
    if state.cfg.tensorboard:
        from fcnlab.tb import TensorBoardHook

        hooks.append(TensorBoardHook(state.run_dir))
    return hooks


def _install_signal_handlers(state: TrainState) -> dict[int, Any]:
    if threading.current_thread() is not threading.main_thread():
        return {}

    def handler(signum, frame):  # noqa: ARG001
        if state.stop_signal is not None:  # second signal: stop now
            raise KeyboardInterrupt
        state.stop_signal = signum

    previous = {}
    for sig in (signal.SIGINT, signal.SIGTERM):
        previous[sig] = signal.signal(sig, handler)
    return previous


def _restore_signal_handlers(previous: dict[int, Any]) -> None:
    for sig, h in previous.items():
        signal.signal(sig, h)
