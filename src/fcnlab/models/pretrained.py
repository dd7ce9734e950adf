"""ImageNet weights for the backbones: torchvision's weights API, or a state dict from disk.

``load_backbone_weights`` copies a torchvision-format state dict (``vgg16_bn``, ``resnet34``, ...) into
a registered model: keys are matched by name (after the model's renames, e.g. FCN ``fc6.weight`` <-
VGG ``classifier.0.weight``) and tensors whose shape differs but whose size matches are reshaped (VGG's
``Linear(25088, 4096)`` becomes the 7x7 convolution ``fc6``; ``Linear(4096, 4096)`` the 1x1 ``fc7``).
The model's head (score layers, upsamplers, the new last ``Linear``) keeps its own initialisation.
"""

from __future__ import annotations

import urllib.error
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torchvision.models import WeightsEnum, get_model_weights

from fcnlab.errors import ConfigError, torch_load_error
from fcnlab.models.registry import ModelSpec, get_spec, no_weights_message

#: ImageNet mean/std; also fcnlab's normalisation for models trained from scratch.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
_PREFIXES = ("module.", "_orig_mod.")


def imagenet_weights(backbone: str) -> WeightsEnum:
    """Return torchvision's ``IMAGENET1K_V1`` weights entry for ``backbone`` (e.g. ``VGG16_BN_Weights``)."""
    return get_model_weights(backbone).IMAGENET1K_V1


def normalization(name: str, pretrained: bool) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Return ``(mean, std)`` for model ``name``'s inputs.

    With ``pretrained`` they come from the ImageNet weights' own transforms (``weights.transforms()``);
    otherwise fcnlab uses the same ImageNet statistics, so a checkpoint's preprocessing never depends on
    how it was initialised.
    """
    spec = get_spec(name)
    if not pretrained:
        return IMAGENET_MEAN, IMAGENET_STD
    if spec.backbone is None:
        raise ConfigError(no_weights_message(name))
    transforms = imagenet_weights(spec.backbone).transforms()
    return tuple(float(m) for m in transforms.mean), tuple(float(s) for s in transforms.std)


def download_state_dict(backbone: str) -> dict[str, torch.Tensor]:
    """Return torchvision's ImageNet state dict for ``backbone`` (from the torch hub cache or the web).

    Raises ConfigError when it cannot be downloaded (no network) and is not cached.
    """
    weights = imagenet_weights(backbone)
    try:
        return weights.get_state_dict(progress=False, check_hash=True)
    except (urllib.error.URLError, OSError, RuntimeError) as e:
        # The recipe may have set pretrained: true, so say how to override it rather than "drop" a flag.
        cached = Path(torch.hub.get_dir()) / "checkpoints" / Path(weights.url).name
        raise ConfigError(
            f"cannot download ImageNet weights for {backbone} (offline?): copy {weights.url} to {cached}, or "
            f"pass --weights FILE with a torchvision state dict, or train from scratch with --no-pretrained "
            f"({type(e).__name__}: {e})"
        ) from None


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Load a state dict saved with ``torch.save``: a raw one, or a dict holding it under
    ``"state_dict"`` or ``"model"``. ``module.``/``_orig_mod.`` prefixes (DDP, compile) are removed."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"--weights {path}: no such file")
    try:
        obj: Any = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - torch.load raises many types (pickle, zip, EOF)
        raise ConfigError(f"--weights {path}: not a torch state dict file ({torch_load_error(e)})") from None
    if isinstance(obj, Mapping):
        for key in ("state_dict", "model"):
            if isinstance(obj.get(key), Mapping):
                obj = obj[key]
                break
    if not isinstance(obj, Mapping) or not obj or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise ConfigError(
            f"--weights {path}: expected a state dict (name -> tensor), raw or under a 'state_dict'/'model' key"
        )
    return {_strip_prefixes(k): v for k, v in obj.items()}


def _strip_prefixes(key: str) -> str:
    changed = True
    while changed:
        changed = False
        for p in _PREFIXES:
            if key.startswith(p):
                key, changed = key[len(p) :], True
    return key


def _in_head(key: str, head: tuple[str, ...]) -> bool:
    return any(key == h or key.startswith(h + ".") for h in head)


def transplant(model: nn.Module, source: Mapping[str, torch.Tensor], spec: ModelSpec, origin: str) -> list[str]:
    """Copy ``source`` (torchvision keys) into every non-head parameter/buffer of ``model``.

    Returns the model keys loaded. Raises ConfigError naming ``origin`` when a needed key is missing or
    its size does not match (a state dict of another architecture).
    """
    target = model.state_dict()
    new_state: dict[str, torch.Tensor] = {}
    for key, value in target.items():
        if _in_head(key, spec.head):
            continue
        src_key = spec.renames.get(key, key)
        if src_key not in source:
            raise ConfigError(
                f"{origin}: not a torchvision {spec.backbone} state dict "
                f"(missing {src_key!r}); pass the {spec.backbone} ImageNet weights"
            )
        src = source[src_key]
        if src.numel() != value.numel():
            raise ConfigError(
                f"{origin}: {src_key!r} has shape {tuple(src.shape)}, {spec.name} needs "
                f"{tuple(value.shape)}; pass a torchvision {spec.backbone} state dict"
            )
        new_state[key] = src.reshape(value.shape).to(value.dtype)
    model.load_state_dict(new_state, strict=False)
    return list(new_state)


def load_backbone_weights(model: nn.Module, spec: ModelSpec, weights: str | Path | None = None) -> list[str]:
    """Load ImageNet weights into ``model``'s backbone: from ``weights`` (a file) or torchvision's API.

    Returns the model keys that were loaded.
    """
    if weights is not None:
        source, origin = read_state_dict(weights), f"--weights {weights}"
    else:
        source, origin = download_state_dict(spec.backbone), f"ImageNet weights of {spec.backbone}"  # type: ignore[arg-type]
    return transplant(model, source, spec, origin)
