"""Classification augmentation policies applied to whole batches on the training device.

Every sample draws its own operation and magnitude, but the work is done per operation, not per sample:
the samples that drew a geometric operation (shear, translate, rotate) go through one ``grid_sample`` with
per-sample matrices, and each colour operation runs once on the samples that drew it, with per-sample
factors. The operation set and magnitude bins are torchvision's (``TrivialAugmentWide`` and
``RandAugment``); each operation (:mod:`fcnlab.data.pixel_ops`) reproduces
``torchvision.transforms.v2.functional`` on uint8 images (nearest interpolation, zero fill, the same
rounding), so a sample's result equals torchvision's for the same operation and magnitude. Random draws
come from the ``torch.Generator`` passed to each call (the training engine's per-rank generator, saved in
checkpoints), so resumed runs repeat them exactly.

CutMix and MixUp are torchvision's batch transforms (one mixing ratio per batch, partner = the previous
sample in the shuffled batch); they draw from torch's global RNG, which checkpoints also save per rank.

Pipeline: uint8 ``(B, 3, H, W)`` (after the random crop and flip) -> policy -> float -> random erasing ->
CutMix/MixUp -> float images on the 0-255 scale, ready for ``normalize``; targets stay class indices, or
become ``(B, num_classes)`` probabilities when CutMix/MixUp is on (``F.cross_entropy``, the classification
loss, takes both).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
from torchvision.transforms import v2

from fcnlab.data.pixel_ops import (
    autocontrast,
    brightness,
    contrast,
    device_constant,
    equalize,
    inverse_affine,
    per_sample,
    posterize,
    saturation,
    sharpness,
    solarize,
    warp,
)
from fcnlab.data.transforms import IMAGENET_MEAN

POLICIES = ("none", "trivialaugment", "randaugment")
GEOMETRIC = ("ShearX", "ShearY", "TranslateX", "TranslateY", "Rotate")
#: What erased and shifted-in pixels become: the ImageNet mean on the 0-255 scale.
IMAGENET_FILL = tuple(255.0 * m for m in IMAGENET_MEAN)


def _space(policy: str) -> dict[str, tuple[Callable, bool]]:
    """torchvision's operations and magnitude bins for ``policy`` (name -> (bins(n, h, w), signed))."""
    cls = v2.TrivialAugmentWide if policy == "trivialaugment" else v2.RandAugment
    return cls._AUGMENTATION_SPACE


def _rand(n: int, gen: torch.Generator, device: torch.device) -> torch.Tensor:
    return torch.rand(n, generator=gen, device=gen.device).to(device)


def _randint(high: int, n: int, gen: torch.Generator, device: torch.device) -> torch.Tensor:
    return torch.randint(high, (n,), generator=gen, device=gen.device).to(device)


def _apply_masked(
    x: torch.Tensor,
    sel: torch.Tensor,
    fn: Callable[..., torch.Tensor],
    *params: torch.Tensor,
    subset: bool | None = None,
) -> torch.Tensor:
    """``fn`` applied to the samples where ``sel`` is true (``params`` are per-sample tensors).

    On the CPU only the selected samples are computed (an index list: fewest operations). On an
    accelerator the whole batch is computed and the selection is a ``where``: building the index list would
    read the device (a host sync per operation) and the extra arithmetic on small images costs less.
    """
    if subset is None:
        subset = x.device.type == "cpu"
    if not subset:
        return torch.where(per_sample(sel), fn(x, *params), x)
    idx = sel.nonzero().squeeze(1)
    if idx.numel() == 0:
        return x
    out = x.clone()
    out[idx] = fn(x.index_select(0, idx), *(p.index_select(0, idx) for p in params))
    return out


# ----------------------------------------------------------------------------------------------------- policy
class AugmentPolicy:
    """TrivialAugmentWide (one random operation and magnitude per sample) or RandAugment (``num_ops``
    random operations per sample at a fixed ``magnitude`` bin), vectorised over the batch."""

    def __init__(self, policy: str, num_ops: int = 2, magnitude: int = 9, num_magnitude_bins: int = 31):
        if policy not in POLICIES[1:]:
            raise ValueError(f"augment policy must be one of {', '.join(POLICIES[1:])}, got {policy!r}")
        if not 0 <= magnitude < num_magnitude_bins:
            raise ValueError(f"magnitude must be in 0..{num_magnitude_bins - 1}, got {magnitude}")
        self.policy, self.num_ops, self.magnitude, self.bins = policy, num_ops, magnitude, num_magnitude_bins
        self.space = _space(policy)
        self.names = list(self.space)
        self.ids = {name: i for i, name in enumerate(self.names)}
        self._table_cache: dict[tuple[int, int, torch.device], tuple[torch.Tensor, torch.Tensor]] = {}

    def magnitude_table(self, h: int, w: int) -> tuple[torch.Tensor, torch.Tensor]:
        """``(ops, bins)`` magnitudes (0 for operations without one) and the ``(ops,)`` signed flags."""
        table = torch.zeros(len(self.names), self.bins)
        signed = torch.zeros(len(self.names), dtype=torch.bool)
        for i, name in enumerate(self.names):
            fn, is_signed = self.space[name]
            values = fn(self.bins, h, w)
            if values is not None:
                table[i] = values.float()
            signed[i] = is_signed
        return table, signed

    def _tables(self, h: int, w: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        """:meth:`magnitude_table` on ``device``, copied there once per image size."""
        key = (h, w, device)
        if key not in self._table_cache:
            with torch.inference_mode(False), torch.no_grad():
                table, signed = self.magnitude_table(h, w)
                self._table_cache[key] = (table.to(device), signed.to(device))
        return self._table_cache[key]

    def draw(
        self, b: int, h: int, w: int, gen: torch.Generator, device: torch.device
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """One round of per-sample operation ids and signed magnitudes."""
        table, signed = self._tables(h, w, device)
        op = _randint(len(self.names), b, gen, device)
        if self.policy == "trivialaugment":
            level = _randint(self.bins, b, gen, device)
        else:
            level = torch.full((b,), self.magnitude, dtype=torch.long, device=device)
        negate = signed[op] & (_rand(b, gen, device) <= 0.5)
        mag = table[op, level]
        return op, torch.where(negate, -mag, mag)

    def apply(self, x: torch.Tensor, op: torch.Tensor, mag: torch.Tensor, subset: bool | None = None) -> torch.Tensor:
        """Apply per-sample operation ``op`` with magnitude ``mag`` to float ``x`` holding uint8 values."""
        h, w = x.shape[-2:]
        ids = self.ids
        geometric = torch.zeros_like(op, dtype=torch.bool)
        for name in GEOMETRIC:
            geometric |= op == ids[name]
        x = _apply_masked(
            x, geometric, lambda t, o, m: warp(t, inverse_affine(o, m, ids, h, w)), op, mag, subset=subset
        )
        colour: list[tuple[str, Callable[..., torch.Tensor], torch.Tensor | None]] = [
            ("Brightness", brightness, 1.0 + mag),
            ("Color", saturation, 1.0 + mag),
            ("Contrast", contrast, 1.0 + mag),
            ("Sharpness", sharpness, 1.0 + mag),
            ("Posterize", posterize, mag.trunc()),
            ("Solarize", solarize, 255.0 * mag),
            ("AutoContrast", autocontrast, None),
            ("Equalize", equalize, None),
        ]
        for name, fn, param in colour:
            if name not in ids:
                continue
            sel = op == ids[name]
            x = _apply_masked(x, sel, fn, *(() if param is None else (param,)), subset=subset)
        return x

    def __call__(self, images: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        """uint8 (or uint8-valued float) ``(B, C, H, W)`` -> float32 holding the augmented uint8 values."""
        b, _, h, w = images.shape
        x = images.float()
        rounds = 1 if self.policy == "trivialaugment" else self.num_ops
        for _ in range(rounds):
            op, mag = self.draw(b, h, w, gen, images.device)
            x = self.apply(x, op, mag)
        return x


# ------------------------------------------------------------------------------------------------ erasing
def random_erasing(
    x: torch.Tensor,
    p: float,
    gen: torch.Generator,
    fill: Sequence[float],
    scale: tuple[float, float] = (0.02, 0.33),
    ratio: tuple[float, float] = (0.3, 3.3),
    attempts: int = 10,
) -> torch.Tensor:
    """``RandomErasing`` with its own rectangle per sample, as one mask over the batch.

    Each sample is erased with probability ``p``; its rectangle is drawn as torchvision draws it (area a
    ``scale`` fraction of the image, log-uniform aspect ``ratio``, up to ``attempts`` draws until it fits,
    else nothing is erased) and filled with ``fill`` (one value per channel: the normalisation mean makes
    the erased area zero after normalisation, torchvision's default fill).
    """
    b, c, h, w = x.shape
    dev = x.device
    area = (scale[0] + (scale[1] - scale[0]) * torch.rand(b, attempts, generator=gen, device=gen.device)) * (h * w)
    log_r = math.log(ratio[0]) + (math.log(ratio[1]) - math.log(ratio[0])) * torch.rand(
        b, attempts, generator=gen, device=gen.device
    )
    aspect = torch.exp(log_r)
    eh = torch.sqrt(area * aspect).round().long()
    ew = torch.sqrt(area / aspect).round().long()
    fits = (eh < h) & (ew < w)
    first = fits.float().argmax(1, keepdim=True)  # the first attempt that fits (0 when none does)
    eh, ew = eh.gather(1, first)[:, 0], ew.gather(1, first)[:, 0]
    do = (torch.rand(b, generator=gen, device=gen.device) < p) & fits.any(1)
    top = (torch.rand(b, generator=gen, device=gen.device) * (h - eh + 1)).long()
    left = (torch.rand(b, generator=gen, device=gen.device) * (w - ew + 1)).long()
    top, left, eh, ew, do = (t.to(dev) for t in (top, left, eh, ew, do))
    rows = torch.arange(h, device=dev)[None, :]
    cols = torch.arange(w, device=dev)[None, :]
    in_rows = (rows >= top[:, None]) & (rows < (top + eh)[:, None])
    in_cols = (cols >= left[:, None]) & (cols < (left + ew)[:, None])
    mask = (in_rows[:, :, None] & in_cols[:, None, :] & do[:, None, None])[:, None]  # (B, 1, H, W)
    value = device_constant(tuple(float(v) for v in fill), (1, -1, 1, 1), dev).to(x.dtype).expand(1, c, 1, 1)
    return torch.where(mask, value, x)


# ------------------------------------------------------------------------------------------------- builder
class BatchAugment:
    """The configured augmentations as one callable: ``(uint8 images, labels, gen) -> (images, targets)``.

    Images come out float32 on the 0-255 scale (for ``normalize``); targets are the labels, or
    ``(B, num_classes)`` probabilities when CutMix or MixUp is on (every batch then, mixed or not).
    """

    def __init__(
        self,
        policy: AugmentPolicy | None,
        erasing: float,
        mix: v2.Transform | None,
        num_classes: int,
        fill: Sequence[float],
    ):
        self.policy, self.erasing, self.mix, self.num_classes = policy, erasing, mix, num_classes
        self.fill = tuple(fill)

    @property
    def soft_targets(self) -> bool:
        """True when targets are class probabilities (CutMix or MixUp on)."""
        return self.mix is not None

    def __call__(
        self, images: torch.Tensor, labels: torch.Tensor, gen: torch.Generator
    ) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.policy(images, gen) if self.policy is not None else images.float()
        if self.erasing > 0:
            x = random_erasing(x, self.erasing, gen, self.fill)
        if self.mix is None:
            return x, labels
        # one-hot by scatter: F.one_hot checks the label range, a device read on a GPU
        soft = torch.zeros(labels.shape[0], self.num_classes, device=labels.device).scatter_(1, labels[:, None], 1.0)
        return self.mix(x, soft)


def build_batch_augment(
    policy: str = "none",
    *,
    randaugment_ops: int = 2,
    randaugment_magnitude: int = 9,
    random_erasing: float = 0.0,
    cutmix: float = 0.0,
    mixup: float = 0.0,
    mix_prob: float = 1.0,
    num_classes: int = 50,
    fill: Sequence[float] = IMAGENET_FILL,
) -> BatchAugment | None:
    """The batch augmentation for these settings, or None when all are off (nothing to do per batch).

    ``policy``: none, trivialaugment or randaugment (``randaugment_ops`` operations at magnitude bin
    ``randaugment_magnitude`` of 31). ``random_erasing``: probability per sample. ``cutmix``/``mixup``: Beta
    alpha (0: off; both on: one of the two per batch, at random); ``mix_prob``: probability that a batch is
    mixed. ``fill``: the erased value per channel on the 0-255 scale.
    """
    if policy not in POLICIES:
        raise ValueError(f"augment policy must be one of {', '.join(POLICIES)}, got {policy!r}")
    if not 0.0 <= random_erasing <= 1.0 or not 0.0 <= mix_prob <= 1.0:
        raise ValueError("random_erasing and mix_prob are probabilities in [0, 1]")
    if cutmix < 0 or mixup < 0:
        raise ValueError("cutmix and mixup are Beta alphas (>= 0; 0 is off)")
    aug_policy = None if policy == "none" else AugmentPolicy(policy, randaugment_ops, randaugment_magnitude)
    mixers = [
        m
        for m in ((v2.CutMix(alpha=cutmix) if cutmix > 0 else None), (v2.MixUp(alpha=mixup) if mixup > 0 else None))
        if m is not None
    ]
    mix = None
    if mixers and mix_prob > 0:
        mix = mixers[0] if len(mixers) == 1 else v2.RandomChoice(mixers)
        if mix_prob < 1:
            mix = v2.RandomApply([mix], p=mix_prob)
    elif mixers:  # mixing configured but never applied: targets keep the soft shape callers expect
        mix = v2.Identity()
    if aug_policy is None and random_erasing == 0 and mix is None:
        return None
    return BatchAugment(aug_policy, random_erasing, mix, num_classes, fill)
