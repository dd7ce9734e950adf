"""The training state: everything the epoch loop needs and a checkpoint saves, built in one place.

:func:`build_state` is used by :func:`fcnlab.training.fit.fit` and by ``fcnlab bench`` (which times the real
training loop), so both train exactly the same way; :func:`restore_state` puts a fresh one at the position of
a checkpoint when a run resumes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DistributedSampler

from fcnlab.checkpoint import BackgroundSaver, rng_state, save_checkpoint, set_rng_state, unwrap
from fcnlab.config import TrainConfig
from fcnlab.data.sampling import epoch_indices, fill_last_batch, shard
from fcnlab.runtime import distributed as dist_utils
from fcnlab.runtime.device import amp_dtype, compile_model
from fcnlab.tasks.base import Task
from fcnlab.training.ema import ModelEma
from fcnlab.training.optim import build_optimizer, build_scheduler, rebase_schedule
from fcnlab.training.signals import finishing_writes


def fresh_accum() -> dict[str, float]:
    """The running sums of an epoch (loss, correct predictions, counted items, batches), all zero."""
    return {"loss": 0.0, "correct": 0.0, "count": 0.0, "batches": 0.0}


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
    epoch_accum: dict[str, float] = field(default_factory=fresh_accum)
    stop_signal: int | None = None
    writing: int = 0  # > 0 while a checkpoint is written or waited for: signals are then only recorded
    epoch_lr: float | None = None  # learning rate at the start of the current epoch (metrics.csv's lr)
    started: float = 0.0  # time.perf_counter() when the command started training (--time-budget's clock)
    budget_planned: bool = False  # --time-budget made its plan (end of warm-up); see fcnlab.training.budget
    budget_epochs_s: list[float] = field(default_factory=list)  # epoch seconds --time-budget saw (this command's)
    budget_asked: int = 0  # the epochs asked for, which the plan may have cut (0: not planned yet)
    last_saved: str = ""  # where the newest last.pt stands, for messages ("end of epoch 3")
    saver: BackgroundSaver = field(default_factory=BackgroundSaver)  # epoch-end checkpoints in the background
    eval_model: Any = None  # the model evaluation runs (compiled, not DDP-wrapped); None: ``model``
    ema: ModelEma | None = None  # the weights' moving average (``cfg.ema``), updated after every optimizer step
    # every finished epoch's metrics.csv and timing.csv row, saved in each checkpoint so that a resumed run
    # can write back a row that a kill between the checkpoint and the log took away
    # (None: resumed from a checkpoint written before it held them)
    history: dict[str, list[dict[str, Any]]] | None = field(default_factory=lambda: {"metrics": [], "timing": []})  # type: ignore[assignment]

    @property
    def scored_model(self) -> torch.nn.Module:
        """The model that is evaluated, selects ``best.pt`` and is loaded for inference: the EMA when on."""
        return self.ema.module if self.ema is not None else (self.eval_model or self.model)

    def checkpoint(
        self, metrics: dict[str, float] | None = None, rng_ranks: list[dict[str, Any]] | None = None
    ) -> dict[str, Any]:
        """The checkpoint dict for the current position (``rng_ranks``: every rank's RNG states under DDP)."""
        ckpt = dict(
            task=self.cfg.task,
            model_name=self.cfg.model,
            num_classes=self.cfg.num_classes,
            model=unwrap(self.model).state_dict(),
            optimizer=self.optimizer.state_dict(),
            scheduler=self.scheduler.state_dict(),
            scaler=self.scaler.state_dict(),
            epoch=self.epoch,
            step_in_epoch=self.step_in_epoch,
            global_step=self.global_step,
            best_metric=self.best_metric,
            best_epoch=self.best_epoch,
            epoch_accum=dict(self.epoch_accum),
            epoch_lr=self.epoch_lr,
            config=self.cfg.to_dict(),
            rng=rng_state(self.gen),
            metrics=metrics or {},
            world_size=self.dist.world_size,
            input_reduction=self.task.input_reduction,
            budget_planned=self.budget_planned,
            budget_asked=self.budget_asked,
            history={k: [dict(r) for r in v] for k, v in (self.history or {}).items()},
        )
        if rng_ranks is not None:
            ckpt["rng_ranks"] = rng_ranks
        if self.ema is not None:  # ``model`` stays the raw weights (exact resume); ``ema`` the averaged ones
            ckpt["ema"] = self.ema.state_dict()
        return ckpt

    def save(self, name: str, metrics: dict[str, float] | None = None, then: Any = None) -> Path:
        """Write ``run_dir/name`` atomically. Under DDP every rank must call it (RNG states are gathered).

        With ``then`` (a callable run once the file is on disk) the write goes to the background saver and
        training continues meanwhile; without it the call returns when the file is on disk.
        """
        path = self.run_dir / name
        rng_ranks = dist_utils.gather_to_main(rng_state(self.gen)) if self.dist.enabled else None
        if self.dist.is_main:
            with finishing_writes(self):
                if then is not None:
                    self.saver.submit(path, self.checkpoint(metrics, rng_ranks), then)
                else:
                    self.saver.wait()
                    save_checkpoint(path, **self.checkpoint(metrics, rng_ranks))
        self.last_saved = (
            f"the end of epoch {self.epoch}"
            if self.step_in_epoch == 0
            else f"epoch {self.epoch + 1} step {self.step_in_epoch}"
        )
        return path


def epoch_batches(
    n: int, cfg: TrainConfig, epoch: int, dist: dist_utils.DistInfo, factors: np.ndarray | None = None
) -> list[torch.Tensor]:
    """This rank's batches of sample indices for ``epoch`` (DistributedSampler with ``set_epoch``).

    With ``cfg.compile`` a short last batch is filled with the epoch's first samples, so every step has the
    same shape (one compiled graph; see :func:`fcnlab.runtime.device.compile_model`).

    With repeat ``factors`` (``sampling: rare``) the epoch's ``n`` draws favour the samples with larger
    factors (:func:`fcnlab.data.sampling.epoch_indices`, seeded by seed and epoch), split over the ranks.
    """
    if factors is not None:
        order = shard(epoch_indices(factors, epoch, cfg.seed, n), dist.rank, dist.world_size)
    else:
        sampler: DistributedSampler[int] = DistributedSampler(
            range(n),  # type: ignore[arg-type]
            num_replicas=dist.world_size,
            rank=dist.rank,
            shuffle=True,
            seed=cfg.seed,
            drop_last=False,
        )
        sampler.set_epoch(epoch)
        order = torch.tensor(list(sampler), dtype=torch.int64)
    batches = list(order.split(cfg.batch_size))
    if cfg.compile:  # compiled steps keep one shape
        return fill_last_batch(batches, order, cfg.batch_size)
    if len(batches) > 1 and 1 == len(batches[-1]) < cfg.batch_size:  # BatchNorm cannot train on a lone sample
        batches.pop()
    return batches


def build_state(
    cfg: TrainConfig,
    task: Task,
    run_dir: Path,
    model: torch.nn.Module,
    device: torch.device,
    dist: dist_utils.DistInfo,
    train_data: Any,
    val_data: Any,
) -> TrainState:
    """A fresh TrainState for ``model`` (already on ``device``, in its memory format).

    Builds the optimizer and LR schedule (:mod:`fcnlab.training.optim`), the autocast dtype and GradScaler,
    ``torch.compile`` (before DDP) when ``cfg.compile``, the DDP wrapper under torchrun, the
    augmentation generator (seeded per rank) and, with ``cfg.ema``, the moving average of ``model``.
    """
    optimizer = build_optimizer(model, cfg, device, dist.world_size)
    steps_per_epoch = len(epoch_batches(len(train_data), cfg, 0, dist, task.sample_factors))
    scheduler = build_scheduler(optimizer, cfg, steps_per_epoch)
    amp = amp_dtype(cfg.amp, device)
    scaler = torch.amp.GradScaler(device.type, enabled=amp == torch.float16)
    eval_model = compile_model(model, cfg.compile_mode) if cfg.compile else model  # compile before DDP
    train_model = eval_model
    if dist.enabled:
        train_model = torch.nn.parallel.DistributedDataParallel(
            eval_model, device_ids=[device.index] if device.type == "cuda" else None
        )
    gen = torch.Generator(device=device)
    gen.manual_seed(cfg.seed * 1000 + dist.rank)
    ema = ModelEma(model, cfg.ema_decay, cfg.ema_warmup) if cfg.ema else None
    return TrainState(
        cfg,
        task,
        run_dir,
        train_model,
        optimizer,
        scheduler,
        scaler,
        device,
        amp,
        gen,
        dist,
        train_data,
        val_data,
        eval_model=eval_model,
        ema=ema,
    )


def restore_state(state: TrainState, ckpt: dict[str, Any]) -> None:
    """Put a freshly built TrainState at the position of a checkpoint (optimizer, scheduler, RNGs, data)."""
    dist = state.dist
    fresh = [float(lr) for lr in state.scheduler.base_lrs]  # this command's peak rates: a changed --lr applies
    state.optimizer.load_state_dict(ckpt["optimizer"])
    state.scheduler.load_state_dict(ckpt["scheduler"])
    rebase_schedule(state.optimizer, state.scheduler, fresh)
    state.scaler.load_state_dict(ckpt["scaler"])
    state.epoch, state.step_in_epoch = ckpt["epoch"], ckpt["step_in_epoch"]
    state.global_step, state.best_metric, state.best_epoch = (
        ckpt["global_step"],
        ckpt["best_metric"],
        ckpt["best_epoch"],
    )
    state.epoch_accum = dict(ckpt.get("epoch_accum") or state.epoch_accum)
    state.epoch_lr = ckpt.get("epoch_lr")
    state.budget_planned = bool(ckpt.get("budget_planned", False))
    # a resume with other --epochs asks for those; else the run keeps the epochs it was asked for
    changed = state.cfg.epochs != int(ckpt.get("config", {}).get("epochs", state.cfg.epochs))
    state.budget_asked = state.cfg.epochs if changed else int(ckpt.get("budget_asked") or state.cfg.epochs)
    if state.ema is not None and ckpt.get("ema") is not None:  # else (ema just turned on) it starts now
        state.ema.load_state_dict(ckpt["ema"])
    state.history = ckpt.get("history")  # None in checkpoints of older versions: the log is only truncated
    state.last_saved = (
        f"the end of epoch {state.epoch}"
        if state.step_in_epoch == 0
        else f"epoch {state.epoch + 1} step {state.step_in_epoch}"
    )
    saved_world = int(ckpt.get("world_size", 1))
    ranks = ckpt.get("rng_ranks")
    if ranks is not None and len(ranks) == dist.world_size:
        set_rng_state(ranks[dist.rank], state.gen)
    elif dist.world_size == saved_world == 1 or dist.rank == 0:
        set_rng_state(ckpt["rng"], state.gen)
    if dist.is_main:
        if saved_world != dist.world_size:
            print(
                f"note: the checkpoint was written by {saved_world} process(es), this run has "
                f"{dist.world_size}: data order and augmentation differ from an uninterrupted run",
                flush=True,
            )
        print(f"resuming {state.run_dir} at epoch {state.epoch + 1} step {state.step_in_epoch}", flush=True)
