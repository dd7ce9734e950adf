"""Test-time augmentation (TTA) as model wrappers, usable wherever a model is called.

* :class:`SegmentationTTA` averages the softmax over the identity and the horizontal flip (``flip``) or
  all 8 dihedral transforms of the square (``d4``: 4 rotations by 90 degrees, each with and without a
  mirror), each prediction mapped back before averaging; with ``scales`` the input is also resized,
  predicted and its probabilities resized back. It returns the **log** of the mean probabilities, so
  ``argmax`` (masks, confusion matrices) and ``cross_entropy`` (the negative log-likelihood of the
  averaged prediction) work on its output exactly as on logits.
* :class:`ClassificationTTA` averages the logits of the image and its mirror (``flip``), and with
  ``flip-translate`` also of the image shifted one pixel up-left and down-right (airbench's TTA).

Both are ``nn.Module`` wrappers around the model and leave its forward untouched, so they compose with
what happens inside the model (the FCNs pad sides that are not multiples of 32 and crop back) and with
what happens around it (tiled prediction of large images calls the wrapper once per window).
Satellite tiles have no "up", so all 8 dihedral transforms are valid views of a tile; a photograph is
only mirror-symmetric, hence ``flip`` for classifiers.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from fcnlab.errors import ConfigError
from fcnlab.tasks import task_info

SEGMENT_TTA = task_info("segment").tta_modes
CLASSIFY_TTA = task_info("classify").tta_modes

#: A dihedral transform: (number of 90-degree counter-clockwise rotations, mirror first).
Transform = tuple[int, bool]


def transforms_for(mode: str) -> list[Transform]:
    """The dihedral transforms averaged by ``mode``: ``none`` (identity), ``flip`` (+ mirror), ``d4`` (all 8)."""
    if mode == "none":
        return [(0, False)]
    if mode == "flip":
        return [(0, False), (0, True)]
    if mode == "d4":
        return [(k, f) for f in (False, True) for k in range(4)]
    raise ConfigError(f"option --tta: {mode!r} is not one of {', '.join(SEGMENT_TTA)}")


def apply_transform(x: torch.Tensor, t: Transform) -> torch.Tensor:
    """Mirror (left-right) if asked, then rotate by ``k`` x 90 degrees, over the last two dimensions."""
    k, flip = t
    if flip:
        x = x.flip(-1)
    return torch.rot90(x, k, dims=(-2, -1)) if k % 4 else x


def invert_transform(y: torch.Tensor, t: Transform) -> torch.Tensor:
    """Undo :func:`apply_transform` on a per-pixel output: rotate back, then mirror back."""
    k, flip = t
    if k % 4:
        y = torch.rot90(y, -k, dims=(-2, -1))
    return y.flip(-1) if flip else y


def parse_scales(text: str | Sequence[float] | None) -> tuple[float, ...]:
    """``"0.75,1,1.25"`` (or a sequence of numbers) -> ``(0.75, 1.0, 1.25)``; ``None``/empty -> ``(1.0,)``.

    Raises ConfigError naming ``--scales`` for values that are not positive numbers.
    """
    if text is None or (isinstance(text, str) and not text.strip()):
        return (1.0,)
    items = text.split(",") if isinstance(text, str) else list(text)
    try:
        scales = tuple(float(s) for s in items)
    except (TypeError, ValueError):
        raise ConfigError(
            f"option --scales: expected comma-separated numbers such as 0.75,1,1.25, got {text!r}"
        ) from None
    if not scales or any(not (0 < s <= 4) for s in scales):
        raise ConfigError(f"option --scales: each scale must be in (0, 4], got {text!r}")
    return scales


def _scaled_size(size: int, scale: float) -> int:
    """``size * scale`` rounded, at least 32 pixels (the networks downsample by 32)."""
    return max(32, int(round(size * scale)))


class SegmentationTTA(nn.Module):
    """Wraps a segmentation model: log of the mean softmax over dihedral views (and scales).

    ``mode`` is ``none``, ``flip`` or ``d4``; ``scales`` resize the input by each factor (sides rounded
    to whole pixels; the wrapped model pads them to its stride as it does for any size) and bring the
    probabilities back to the input size bilinearly. Views run one after the other, so memory is that of
    one view plus the running sum.
    """

    def __init__(self, model: nn.Module, mode: str = "flip", scales: Sequence[float] = (1.0,)) -> None:
        super().__init__()
        self.model = model
        self.mode = mode
        self.views = transforms_for(mode)
        self.scales = tuple(float(s) for s in scales) or (1.0,)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, C, H, W)`` log-probabilities (float32) for images ``(B, 3, H, W)``."""
        h, w = x.shape[-2:]
        total: torch.Tensor | None = None
        for s in self.scales:
            xs = x
            if s != 1.0:
                size = (_scaled_size(h, s), _scaled_size(w, s))
                xs = F.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=s < 1)
            for t in self.views:
                probs = invert_transform(self.model(apply_transform(xs, t)).float().softmax(1), t)
                if probs.shape[-2:] != (h, w):
                    probs = F.interpolate(probs, size=(h, w), mode="bilinear", align_corners=False)
                total = probs if total is None else total + probs
        assert total is not None
        n = len(self.scales) * len(self.views)
        # the floor keeps log finite where float32 softmax underflows to exactly 0
        return (total / n).clamp_min(torch.finfo(torch.float32).tiny).log()

    def extra_repr(self) -> str:
        return f"mode={self.mode!r}, scales={self.scales}"


class ClassificationTTA(nn.Module):
    """Wraps a classifier: the mean of the logits of the image and its left-right mirror (``flip``)."""

    def __init__(self, model: nn.Module, mode: str = "flip") -> None:
        super().__init__()
        if mode not in CLASSIFY_TTA:
            raise ConfigError(
                f"option --tta: {mode!r} is not one of {', '.join(CLASSIFY_TTA)} for classifiers "
                f"(a photograph has an up: no rotations)"
            )
        self.model = model
        self.mode = mode

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Mean logits ``(B, num_classes)`` (float32) for images ``(B, 3, H, W)``."""
        return mean_over_mirrors(self.model, x, self.mode)

    def extra_repr(self) -> str:
        return f"mode={self.mode!r}"


def mean_over_mirrors(fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, mode: str) -> torch.Tensor:
    """The mean of ``fn(x)`` and ``fn(mirror of x)`` for ``flip``, ``fn(x)`` for ``none`` (float32).

    ``flip-translate`` (airbench's TTA): half the ``flip`` mean of ``x`` plus half the mean of the ``flip``
    means of ``x`` shifted by one pixel up-left and down-right (reflect-padded), six passes in all.
    For image-level outputs (logits, penultimate features), which a mirror does not move.
    """
    if mode not in CLASSIFY_TTA:
        raise ConfigError(f"option --tta: {mode!r} is not one of {', '.join(CLASSIFY_TTA)} for classifiers")
    out = fn(x).float()
    if mode == "none":
        return out
    out = (out + fn(x.flip(-1)).float()) / 2
    if mode == "flip-translate":
        h, w = x.shape[-2:]
        padded = F.pad(x, (1, 1, 1, 1), mode="reflect")
        shifted = [mean_over_mirrors(fn, padded[..., dy : dy + h, dx : dx + w], "flip") for dy, dx in ((0, 0), (2, 2))]
        out = 0.5 * out + 0.25 * (shifted[0] + shifted[1])
    return out


def check_tta(dense: bool, mode: str, scales: Sequence[float] = (1.0,)) -> None:
    """Raise a one-line ConfigError unless ``mode`` and ``scales`` suit the model: ``dense`` (per-pixel
    logits, segmentation: ``none|flip|d4`` and scales) or not (one logit vector per image: ``none|flip``)."""
    scales = tuple(float(s) for s in scales) or (1.0,)
    if not dense:
        if mode not in CLASSIFY_TTA:
            raise ConfigError(f"option --tta: {mode!r} is not one of {', '.join(CLASSIFY_TTA)} for classifiers")
        if scales != (1.0,):
            raise ConfigError("option --scales: multi-scale averaging is for segmentation models only")
    elif mode not in SEGMENT_TTA:
        raise ConfigError(f"option --tta: {mode!r} is not one of {', '.join(SEGMENT_TTA)}")


def with_tta(model: nn.Module, dense: bool, mode: str = "none", scales: Sequence[float] = (1.0,)) -> nn.Module:
    """``model`` wrapped for test-time augmentation, or ``model`` itself when there is nothing to average.

    ``dense``: a segmentation model (modes ``none|flip|d4``, optional ``scales``); otherwise a classifier
    (``none|flip``, no scales). The wrapper is in the wrapped model's mode (call ``.eval()`` on either).
    """
    scales = tuple(float(s) for s in scales) or (1.0,)
    check_tta(dense, mode, scales)
    if not dense:
        return model if mode == "none" else ClassificationTTA(model, mode).train(model.training)
    if mode == "none" and scales == (1.0,):
        return model
    return SegmentationTTA(model, mode, scales).train(model.training)
