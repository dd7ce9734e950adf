"""A small timm-like model registry: ``@register_model`` adds a builder, :func:`build_model` calls it.

Each entry records the task (``classify`` or ``segment``), the torchvision architecture whose ImageNet
weights fit its backbone, the modules that are new to fcnlab (the head, left at their own
initialisation when weights are loaded) and any key renames needed to transplant a torchvision state
dict (e.g. VGG's ``classifier.0`` -> ``fc6``).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from torch import nn

from fcnlab.errors import ConfigError
from fcnlab.taskinfo import TASKS


@dataclass(frozen=True)
class ModelSpec:
    """What the registry knows about one model name."""

    name: str
    task: str
    builder: Callable[..., nn.Module]
    backbone: str | None
    head: tuple[str, ...] = ()
    renames: Mapping[str, str] = field(default_factory=dict)
    cpu_channels_last: bool = False


_REGISTRY: dict[str, ModelSpec] = {}


def register_model(
    name: str,
    task: str,
    backbone: str | None,
    head: tuple[str, ...] = (),
    renames: Mapping[str, str] | None = None,
    cpu_channels_last: bool = False,
) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    """Decorator registering ``builder(num_classes, **kwargs) -> nn.Module`` under ``name``.

    ``backbone`` names the torchvision architecture whose weights fit (``"vgg16_bn"``, ``"resnet34"``), or
    is None for a model that has no ImageNet weights (trained from scratch only);
    ``head`` lists the module prefixes that the torchvision weights do not cover; ``renames`` maps
    model state-dict keys to torchvision keys (tensors are reshaped when only the shape differs).
    ``cpu_channels_last`` says the model trains faster in channels-last format on the CPU even on small
    inputs (see ``use_channels_last``).
    """
    if task not in TASKS:
        raise ValueError(f"task must be one of {TASKS}, got {task!r}")

    def decorator(builder: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        if name in _REGISTRY:
            raise ValueError(f"model {name!r} is already registered")
        _REGISTRY[name] = ModelSpec(name, task, builder, backbone, tuple(head), dict(renames or {}), cpu_channels_last)
        return builder

    return decorator


def unregister_model(name: str) -> None:
    """Remove model ``name`` if it is registered (a model registered for a while, e.g. by a test)."""
    _REGISTRY.pop(name, None)


def list_models(task: str | None = None) -> list[str]:
    """Return the registered model names (sorted), optionally only those of one ``task``."""
    if task is not None and task not in TASKS:
        raise ConfigError(f"unknown task {task!r}: choose one of {', '.join(TASKS)}")
    return sorted(n for n, s in _REGISTRY.items() if task is None or s.task == task)


def get_spec(name: str) -> ModelSpec:
    """Return the :class:`ModelSpec` of ``name``; unknown names raise ConfigError listing the valid ones."""
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ConfigError(f"unknown model {name!r}: choose one of {', '.join(list_models())}") from None


def no_weights_message(name: str) -> str:
    """The error for ``--pretrained``/``--weights`` with a model that has no ImageNet weights."""
    return f"model {name!r} has no ImageNet weights: train it from scratch (drop --pretrained and --weights)"


def model_task(name: str) -> str:
    """Return ``"classify"`` or ``"segment"`` for a registered model name."""
    return get_spec(name).task


def build_model(
    name: str,
    num_classes: int,
    pretrained: bool = False,
    weights: str | Path | None = None,
    **kwargs: Any,
) -> nn.Module:
    """Build the registered model ``name`` with ``num_classes`` outputs.

    ``pretrained=True`` loads torchvision's ImageNet weights (downloaded or from the torch hub cache)
    into the backbone; ``weights=FILE`` loads a torchvision-format state dict from disk instead (for
    offline use; it implies ``pretrained``). Extra ``kwargs`` go to the builder (e.g.
    ``learn_upsampling=True`` for the FCNs).
    """
    spec = get_spec(name)
    if not isinstance(num_classes, int) or isinstance(num_classes, bool) or num_classes < 1:
        raise ConfigError(f"num_classes must be a positive integer, got {num_classes!r}")
    try:
        inspect.signature(spec.builder).bind(num_classes, **kwargs)
    except TypeError as e:
        raise ConfigError(f"bad option for model {name!r}: {e}") from None
    if (pretrained or weights is not None) and spec.backbone is None:
        raise ConfigError(no_weights_message(name))
    model = spec.builder(num_classes, **kwargs)
    if pretrained or weights is not None:
        from fcnlab.models.pretrained import load_backbone_weights

        load_backbone_weights(model, spec, weights)
    return model
