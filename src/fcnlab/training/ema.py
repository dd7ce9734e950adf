"""Exponential moving average (EMA) of a model's weights and BatchNorm statistics, for both tasks.

A thin layer over :class:`torch.optim.swa_utils.AveragedModel` with ``get_ema_multi_avg_fn``:
``use_buffers=True`` so the running BN statistics are averaged like the weights (the averaged model is then
evaluated as is, with no extra pass over the data to recompute them). The averaged copy is made from the
plain module inside DDP / ``torch.compile`` wrappers, so its state dict has the same keys as a checkpoint's
``model``.

After ``t`` updates with model weights ``w_1 .. w_t``: ``ema_1 = w_1`` and
``ema_t = d_t * ema_{t-1} + (1 - d_t) * w_t``, where ``d_t = decay`` or, with ``warmup``,
``d_t = min(decay, (1 + t) / (10 + t))`` so that a short run is not dominated by its first weights.
"""

from __future__ import annotations

from typing import Any

import torch
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from fcnlab.checkpoint import unwrap


def ema_decay_at(update: int, decay: float, warmup: bool) -> float:
    """The decay used by the ``update``-th update (1-based; the first update copies the weights)."""
    if not warmup:
        return decay
    return min(decay, (1.0 + update) / (10.0 + update))


class ModelEma:
    """An averaged copy of ``model`` (weights and buffers), updated after every optimizer step.

    ``model`` may be wrapped in DDP and/or ``torch.compile``; the average is of the module inside. The
    copy lives on ``model``'s device; ``module`` is the averaged ``nn.Module`` to evaluate or export.
    """

    def __init__(self, model: torch.nn.Module, decay: float = 0.999, warmup: bool = False):
        if not 0.0 <= decay <= 1.0:
            raise ValueError(f"EMA decay must be in [0, 1], got {decay}")
        self.decay, self.warmup = float(decay), bool(warmup)
        self.updates = 0
        self._decay_now = self.decay
        base = unwrap(model)

        def multi_avg_fn(ema_params, model_params, num_averaged) -> None:
            # the library's EMA step, with this update's decay (a host float: no device read per step)
            get_ema_multi_avg_fn(self._decay_now)(ema_params, model_params, num_averaged)

        self.averaged = AveragedModel(base, multi_avg_fn=multi_avg_fn, use_buffers=True)
        # the update counter stays on the host: AveragedModel compares it with 0 in every update, which
        # would be a device read (a host sync on a GPU) if it lived there
        self.averaged.n_averaged = self.averaged.n_averaged.cpu()
        self.averaged.module.eval()
        self.averaged.module.requires_grad_(False)

    @property
    def module(self) -> torch.nn.Module:
        """The averaged model (same class and state-dict keys as the unwrapped training model)."""
        return self.averaged.module

    @torch.no_grad()
    def update(self, model: torch.nn.Module) -> None:
        """Fold the current weights and buffers of ``model`` (wrapped or not) into the average."""
        self.updates += 1
        self._decay_now = ema_decay_at(self.updates, self.decay, self.warmup)
        self.averaged.update_parameters(unwrap(model))

    def state_dict(self) -> dict[str, Any]:
        """Plain tensors and numbers (``torch.load(weights_only=True)``-safe), for the checkpoint; the tensors
        are the live ones, as in ``nn.Module.state_dict`` (the checkpoint writer copies them)."""
        return {"decay": self.decay, "warmup": self.warmup, "updates": self.updates,
                "module": self.module.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore an average saved by :meth:`state_dict` (same architecture)."""
        self.module.load_state_dict(state["module"])
        self.updates = int(state["updates"])
        self.averaged.n_averaged.fill_(self.updates)
        self.decay, self.warmup = float(state.get("decay", self.decay)), bool(state.get("warmup", self.warmup))
