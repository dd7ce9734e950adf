"""Optimizer parameter groups: frozen parameters left out, no weight decay on norms/biases/upsamplers."""

from __future__ import annotations

from typing import Any

from torch import nn

from fcnlab.models.classifiers import last_linear


def _unwrap(model: nn.Module) -> nn.Module:
    """The user model inside DDP (``.module``) / ``torch.compile`` (``._orig_mod``) wrappers."""
    for attr in ("module", "_orig_mod"):
        inner = getattr(model, attr, None)
        if isinstance(inner, nn.Module):
            return _unwrap(inner)
    return model


def head_modules(model: nn.Module) -> tuple[str, ...]:
    """Module names that are new to fcnlab (not in the ImageNet backbone).

    FCNs declare them in ``HEAD`` (score layers and upsamplers); for a classifier it is the last Linear.
    """
    head = getattr(model, "HEAD", None)
    if head:
        return tuple(head)
    linear = last_linear(model)
    return tuple(name for name, m in model.named_modules() if m is linear)


def trainable_param_groups(model: nn.Module, lr: float, weight_decay: float) -> list[dict[str, Any]]:
    """Return optimizer param groups for ``model``.

    * parameters with ``requires_grad=False`` (e.g. a frozen bilinear upsampler) are never included;
    * biases, normalisation weights and transposed-convolution (upsampler) kernels get no weight decay,
      all other weights get ``weight_decay``;
    * every group has learning rate ``lr``; the split into backbone and head (:func:`head_modules`) is named.

    Each group carries a ``"name"`` (``backbone/decay``, ``head/no_decay``, ...); empty groups are
    dropped.
    """
    model = _unwrap(model)
    head = head_modules(model)
    buckets: dict[tuple[str, bool], list[nn.Parameter]] = {}
    seen: set[int] = set()
    for mod_name, module in model.named_modules():
        for p_name, param in module.named_parameters(recurse=False):
            if not param.requires_grad or id(param) in seen:
                continue
            seen.add(id(param))
            full = f"{mod_name}.{p_name}" if mod_name else p_name
            part = "head" if any(full.startswith(h + ".") for h in head) else "backbone"
            # biases and norm weights are 1-D; upsampler kernels are not decayed either
            decay = not (param.ndim <= 1 or isinstance(module, nn.ConvTranspose2d))
            buckets.setdefault((part, decay), []).append(param)
    groups = []
    for part in ("backbone", "head"):
        for decay in (True, False):
            params = buckets.get((part, decay))
            if params:
                groups.append(
                    {
                        "name": f"{part}/{'decay' if decay else 'no_decay'}",
                        "params": params,
                        "lr": lr,
                        "weight_decay": weight_decay if decay else 0.0,
                    }
                )
    return groups
