"""Optimizer and learning-rate schedule factories, shared by training and ``fcnlab bench``."""

from __future__ import annotations

import math
from typing import Any

import torch

from fcnlab.config import TrainConfig


def peak_lr(cfg: TrainConfig, world_size: int = 1) -> float:
    """The peak learning rate: ``cfg.lr``, or with ``lr_base_batch`` > 0 the rate for that many images per step
    scaled to the global batch ``batch_size x world_size`` (timm's ``--lr-base-size``/``--lr-base-scale``):
    linearly (Goyal et al. 2017, for SGD) or by its square root (often better for adaptive optimizers)."""
    if cfg.lr_base_batch <= 0:
        return cfg.lr
    ratio = cfg.batch_size * world_size / cfg.lr_base_batch
    return cfg.lr * (ratio if cfg.lr_scaling == "linear" else math.sqrt(ratio))


def build_optimizer(
    model: torch.nn.Module, cfg: TrainConfig, device: torch.device, world_size: int = 1
) -> torch.optim.Optimizer:
    """SGD (momentum, optionally Nesterov) or AdamW over trainable parameters only (frozen upsamplers stay out),
    at the :func:`peak_lr` for ``world_size`` processes."""
    from fcnlab.models import trainable_param_groups

    lr = peak_lr(cfg, world_size)
    groups = trainable_param_groups(model, lr=lr, weight_decay=cfg.weight_decay)
    # fused kernels: on CUDA one launch for all parameters; on the CPU faster than the for-loop too
    # (docs/ENGINEERING.md)
    fused: dict[str, Any] = {"fused": True} if device.type in ("cuda", "cpu") else {}
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=lr, momentum=cfg.momentum, nesterov=cfg.nesterov, **fused)
    return torch.optim.AdamW(groups, lr=lr, **fused)


def lr_factor(step: int, cfg: TrainConfig, steps_per_epoch: int) -> float:
    """Multiplier of the peak LR at optimizer step ``step``: linear warm-up, then cosine/poly/step/constant.

    ``poly`` is DeepLab's ``(1 - t / T) ** 0.9`` over the ``T`` steps after warm-up.
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


def build_scheduler(
    optimizer: torch.optim.Optimizer, cfg: TrainConfig, steps_per_epoch: int
) -> torch.optim.lr_scheduler.LambdaLR:
    """The per-step schedule of :func:`lr_factor` (warm-up, then cosine/poly/step/constant) on ``optimizer``."""
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: lr_factor(s, cfg, steps_per_epoch))


def rebase_schedule(
    optimizer: torch.optim.Optimizer, scheduler: torch.optim.lr_scheduler.LambdaLR, base_lrs: list[float]
) -> None:
    """Make ``base_lrs`` the peak rates of a schedule restored from a checkpoint (which brings its own).

    A resume with ``--change-settings --lr X`` must train at X from its next step on; loading the optimizer and
    scheduler states puts the old peak rates back. Nothing changes when the rates are the same (a plain resume
    stays bit-exact).
    """
    if list(scheduler.base_lrs) == list(base_lrs):
        return
    scheduler.base_lrs = list(base_lrs)
    for group, base, factor in zip(optimizer.param_groups, base_lrs, scheduler.lr_lambdas, strict=True):
        group["initial_lr"] = base
        group["lr"] = base * factor(scheduler.last_epoch)
