"""The start-up summary a training run prints before its first step: data, model, schedule, input scale,
where the resolved config is."""

from __future__ import annotations

import torch

from fcnlab.config import TrainConfig
from fcnlab.runs import CONFIG, ENV
from fcnlab.training.budget import planning_epoch
from fcnlab.training.optim import peak_lr
from fcnlab.training.state import TrainState, epoch_batches


def startup_summary(state: TrainState, model: torch.nn.Module) -> str:
    """What the run is about to do: data, model size and initialisation, schedule, where the config is."""
    cfg = state.cfg
    params = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    init = f"weights from {cfg.weights}" if cfg.weights else "ImageNet weights" if cfg.pretrained else "from scratch"
    steps = len(epoch_batches(len(state.train_data), cfg, 0, state.dist))
    world = state.dist.world_size if state.dist.enabled else 1
    lines = [
        f"  data: {len(state.train_data)} training images ({cfg.data}), {len(state.val_data)} validation "
        f"({cfg.val})"
        + (f"; --limit {cfg.limit}" if cfg.limit else "")
        + (f", --val-limit {cfg.val_limit}" if cfg.val_limit else ""),
        f"  model: {cfg.model}, {params:,} parameters ({trainable:,} trainable), {init}",
        f"  schedule: {cfg.epochs} epochs x {steps} steps of {cfg.batch_size} images"
        + (f" x {world} processes" if world > 1 else "")
        + f"; {cfg.optimizer} lr {_lr_text(cfg, world)}, {cfg.scheduler}"
        + (
            f" (at most; --time-budget {cfg.time_budget:g} min: fewer if they do not fit, seen after epoch "
            f"{planning_epoch(cfg)})"
            if cfg.time_budget and not state.budget_planned
            else ""
        )
        + (f", from epoch {state.epoch + 1}" if state.epoch else ""),
        *_input_lines(state),
        *_precision_lines(state),
        f"  config: {state.run_dir / CONFIG} (resolved; the command line is in {state.run_dir / ENV})",
    ]
    return "\n".join(lines)


def _input_lines(state: TrainState) -> list[str]:
    """With ``--input-size``: the size the model trains at, and that validation is at full resolution."""
    k = state.task.input_reduction
    if k == 1:
        return []
    th, tw = state.train_data.images.shape[-2:]
    vh, vw = state.val_data.images.shape[-2:]
    return [
        f"  input: tiles reduced {k}x (area filter; masks by majority vote): training {tw}x{th}, validation "
        f"{vw}x{vh}; val_miou is at that scale, segment eval scores full resolution"
    ]


def _precision_lines(state: TrainState) -> list[str]:
    """Says so when ``amp: bf16`` runs in fp32 because this CPU has no native bf16 (AVX-512 or AMX)."""
    if state.cfg.amp != "bf16" or state.device.type != "cpu" or state.amp is not None:
        return []
    return ["  precision: fp32 (amp bf16 asked for, but this CPU has no AVX-512/AMX bf16 and emulating it is slower)"]


def _lr_text(cfg: TrainConfig, world: int) -> str:
    """The peak learning rate, with how it was scaled from ``lr`` when ``lr_base_batch`` is set."""
    if cfg.lr_base_batch <= 0:
        return f"{cfg.lr:g}"
    return (
        f"{peak_lr(cfg, world):g} ({cfg.lr:g} per {cfg.lr_base_batch} images, {cfg.lr_scaling} scaling to "
        f"a batch of {cfg.batch_size * world})"
    )
