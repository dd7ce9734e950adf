"""The per-sample image operations of the batch augmentation policies (:mod:`fcnlab.data.batch_augment`).

Each takes ``x``: float32 ``(B, C, H, W)`` holding integers 0..255, and per-sample parameters, and returns
the same, as torchvision's uint8 kernels do (their float results are truncated by the cast back to uint8):
the colour operations of ``torchvision.transforms.v2.functional`` and the inverse affine maps and
nearest-neighbour warp of its geometric ones.
"""

from __future__ import annotations

import functools
import math

import torch
import torch.nn.functional as F
from torchvision.transforms.v2 import functional as TF


@functools.lru_cache(maxsize=64)
def device_constant(values: tuple[float, ...], shape: tuple[int, ...], device: torch.device) -> torch.Tensor:
    """A small float32 constant on ``device``, made once: building it per batch would be a blocking
    host-to-device copy (a host sync per training step on a GPU)."""
    with torch.inference_mode(False), torch.no_grad():  # usable in and out of inference mode
        return torch.tensor(values, dtype=torch.float32).view(shape).to(device)


def per_sample(v: torch.Tensor) -> torch.Tensor:
    """A ``(B,)`` per-sample value as ``(B, 1, 1, 1)``, to broadcast over each sample's pixels."""
    return v.view(-1, 1, 1, 1)


def _gray(x: torch.Tensor) -> torch.Tensor:
    r, g, b = x.unbind(1)
    return r.mul(0.2989).add_(g, alpha=0.587).add_(b, alpha=0.114).unsqueeze(1).floor_()


def _blend(x: torch.Tensor, other: torch.Tensor, ratio: torch.Tensor) -> torch.Tensor:
    r = per_sample(ratio)
    return (x * r + other * (1.0 - r)).clamp_(0, 255).trunc_()


def brightness(x: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """``adjust_brightness`` with a per-sample factor."""
    return (x * per_sample(factor)).clamp_(0, 255).trunc_()


def saturation(x: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """``adjust_saturation`` (torchvision's "Color") with a per-sample factor."""
    return _blend(x, _gray(x), factor)


def contrast(x: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """``adjust_contrast`` with a per-sample factor (blend with the mean grey level of each image)."""
    return _blend(x, _gray(x).mean(dim=(1, 2, 3), keepdim=True), factor)


def sharpness(x: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """``adjust_sharpness`` with a per-sample factor (the border pixels are kept, as torchvision does)."""
    c = x.shape[1]
    if x.shape[-1] <= 2 or x.shape[-2] <= 2:
        return x
    a, b = 1.0 / 13.0, 5.0 / 13.0
    kernel = device_constant((a, a, a, a, b, a, a, a, a), (1, 1, 3, 3), x.device).to(x.dtype).expand(c, 1, 3, 3)
    blurred = F.conv2d(x, kernel, groups=c).round_()
    out = x.clone()
    inner = out[..., 1:-1, 1:-1]
    inner.add_((blurred - inner) * (1.0 - per_sample(factor)))
    return out.clamp_(0, 255).trunc_()


def posterize(x: torch.Tensor, bits: torch.Tensor) -> torch.Tensor:
    """``posterize``: keep the ``bits`` high bits of each value (per-sample ``bits`` in 0..8)."""
    step = torch.exp2(8 - per_sample(bits).clamp(0, 8).float())
    return (x / step).floor_() * step


def solarize(x: torch.Tensor, threshold: torch.Tensor) -> torch.Tensor:
    """``solarize``: invert the values at or above the per-sample ``threshold``."""
    return torch.where(x >= per_sample(threshold), 255.0 - x, x)


def autocontrast(x: torch.Tensor) -> torch.Tensor:
    """``autocontrast``: stretch each channel of each image to 0..255."""
    lo = x.amin(dim=(-2, -1), keepdim=True)
    hi = x.amax(dim=(-2, -1), keepdim=True)
    flat = hi == lo
    inv_scale = (hi - lo).mul_(1.0 / 255.0)
    lo = lo.masked_fill(flat, 0.0)
    inv_scale = inv_scale.masked_fill(flat, 1.0)
    return (x - lo).div_(inv_scale).clamp_(0, 255).trunc_()


def equalize(x: torch.Tensor) -> torch.Tensor:
    """``equalize`` per image and channel (torchvision's kernel takes batches: batched histograms)."""
    return TF.equalize(x.to(torch.uint8)).float()


def inverse_affine(op: torch.Tensor, mag: torch.Tensor, ids: dict[str, int], h: int, w: int) -> torch.Tensor:
    """Per-sample ``(B, 2, 3)`` output->input pixel maps (centred coordinates) of the geometric operations.

    These are torchvision's ``_get_inverse_affine_matrix`` for the calls its auto-augment classes make:
    shears about the top-left corner with ``shear = atan(m)`` degrees, integer translations, rotation by
    ``m`` degrees about the centre. Samples with another operation get the identity.
    """
    b = op.shape[0]
    theta = torch.zeros(b, 2, 3, device=mag.device)
    theta[:, 0, 0] = theta[:, 1, 1] = 1.0

    def pick(name: str) -> torch.Tensor:
        return op == ids.get(name, -1)

    shear_x, shear_y = pick("ShearX"), pick("ShearY")
    theta[:, 0, 1] = torch.where(shear_x, mag, 0.0)  # x_in = x + m y + m h / 2
    theta[:, 0, 2] = torch.where(shear_x, mag * (h / 2), 0.0)
    theta[:, 1, 0] = torch.where(shear_y, mag, 0.0)  # y_in = m x + y + m w / 2
    theta[:, 1, 2] = torch.where(shear_y, mag * (w / 2), 0.0)
    theta[:, 0, 2] -= torch.where(pick("TranslateX"), mag.trunc(), 0.0)
    theta[:, 1, 2] -= torch.where(pick("TranslateY"), mag.trunc(), 0.0)
    rot = pick("Rotate")
    ang = torch.where(rot, -mag, 0.0) * (math.pi / 180.0)
    cos, sin = torch.cos(ang), torch.sin(ang)
    theta[:, 0, 0] = torch.where(rot, cos, theta[:, 0, 0])
    theta[:, 0, 1] = torch.where(rot, sin, theta[:, 0, 1])
    theta[:, 1, 0] = torch.where(rot, -sin, theta[:, 1, 0])
    theta[:, 1, 1] = torch.where(rot, cos, theta[:, 1, 1])
    return theta


def warp(x: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
    """Nearest-neighbour warp of each sample by its ``theta`` (torchvision's ``_affine_grid``, zero fill)."""
    b, _, h, w = x.shape
    xs = torch.linspace((1.0 - w) * 0.5, (w - 1.0) * 0.5, w, device=x.device)
    ys = torch.linspace((1.0 - h) * 0.5, (h - 1.0) * 0.5, h, device=x.device)
    base = torch.stack([xs.expand(h, w), ys[:, None].expand(h, w), torch.ones(h, w, device=x.device)], -1)
    rescaled = theta.transpose(1, 2) / device_constant((0.5 * w, 0.5 * h), (1, 1, 2), x.device)
    grid = base.view(1, h * w, 3).expand(b, -1, -1).bmm(rescaled).view(b, h, w, 2)
    return F.grid_sample(x, grid, mode="nearest", padding_mode="zeros", align_corners=False).round_()
