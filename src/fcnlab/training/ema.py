"""Exponential moving average (EMA) of a model's weights and BatchNorm statistics, for both tasks.

:class:`torch.optim.swa_utils.AveragedModel` (the copy) with ``get_ema_multi_avg_fn`` (the step):
``use_buffers=True`` so the running BN statistics are averaged like the weights (the averaged model is then
evaluated as is, with no extra pass over the data to recompute them). The averaged copy is made from the
plain module inside DDP / ``torch.compile`` wrappers, so its state dict has the same keys as a checkpoint's
``model``.

After ``t`` updates with model weights ``w_1 .. w_t``: ``ema_1 = w_1`` and
``ema_t = d_t * ema_{t-1} + (1 - d_t) * w_t``, where ``d_t = decay`` or, with ``warmup``,
``d_t = min(decay, (1 + t) / (10 + t))`` so that a short run is not dominated by its first weights.
"""

from __future__ import annotations

import itertools
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
        self.averaged = AveragedModel(unwrap(model), multi_avg_fn=get_ema_multi_avg_fn(self.decay), use_buffers=True)
        self.averaged.n_averaged = self.averaged.n_averaged.cpu()  # kept equal to ``updates``, on the host
        self.averaged.module.eval()
        self.averaged.module.requires_grad_(False)

    @property
    def module(self) -> torch.nn.Module:
        """The averaged model (same class and state-dict keys as the unwrapped training model)."""
        return self.averaged.module

    @torch.no_grad()
    def update(self, model: torch.nn.Module) -> None:
        """Fold the current weights and buffers of ``model`` (wrapped or not) into the average.

        The arithmetic of ``AveragedModel.update_parameters`` (copy at the first update, then the library's
        EMA step on weights and buffers), without its reads of the update counter from the device: two host
        syncs per training step on a GPU. Integer buffers (BatchNorm's batch counter) follow the model.
        """
        base = unwrap(model)
        ema = [t.detach() for t in itertools.chain(self.module.parameters(), self.module.buffers())]
        cur = [t.detach() for t in itertools.chain(base.parameters(), base.buffers())]
        if len(ema) != len(cur):
            raise ValueError("EMA update: the model's parameters and buffers differ from the averaged copy's")
        self.updates += 1
        if self.updates == 1:
            for e, c in zip(ema, cur, strict=True):
                e.copy_(c)
        else:
            floats = [(e, c) for e, c in zip(ema, cur, strict=True) if e.is_floating_point()]
            step = get_ema_multi_avg_fn(ema_decay_at(self.updates, self.decay, self.warmup))
            step([e for e, _ in floats], [c for _, c in floats], None)
            for e, c in zip(ema, cur, strict=True):
                if not e.is_floating_point():
                    e.copy_(c)
        self.averaged.n_averaged.fill_(self.updates)

    def state_dict(self) -> dict[str, Any]:
        """Plain tensors and numbers (``torch.load(weights_only=True)``-safe), for the checkpoint; the tensors
        are the live ones, as in ``nn.Module.state_dict`` (the checkpoint writer copies them)."""
        return {"decay": self.decay, "warmup": self.warmup, "updates": self.updates, "module": self.module.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore an average saved by :meth:`state_dict` (same architecture)."""
        self.module.load_state_dict(state["module"])
        self.updates = int(state["updates"])
        self.averaged.n_averaged.fill_(self.updates)
        self.decay, self.warmup = float(state.get("decay", self.decay)), bool(state.get("warmup", self.warmup))
