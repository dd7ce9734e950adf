"""Segmentation losses chosen by name: cross-entropy, Lovasz-softmax, soft Dice, and their sums with CE.

``loss: ce`` is plain (optionally class-weighted) cross-entropy; ``lovasz`` the Lovasz-softmax loss of
Berman, Triki and Blaschko (CVPR 2018), a convex surrogate of the per-class Jaccard loss ``1 - IoU``
that the course's mIoU measures; ``dice`` the soft multi-class Dice loss; ``ce+lovasz`` and ``ce+dice``
their unweighted sums with cross-entropy. (Classification's loss is ``F.cross_entropy`` itself, which takes
class indices or the class probabilities of CutMix/MixUp, with label smoothing in both cases.)

Conventions shared by all terms: ``logits`` are ``(B, C, H, W)``, ``targets`` ``(B, H, W)`` class ids;
pixels whose target is ``ignore_index`` take no part; Lovasz and Dice average over the classes present
in the batch's targets (the reference implementation's ``classes='present'``), computed over the whole
batch at once (its ``per_image=False``), like the course's dataset-level IoU. Class weights apply to
the cross-entropy term only.

Written here rather than imported: segmentation_models_pytorch has both losses but pulls in timm,
huggingface-hub and safetensors for two functions of a few lines each.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from fcnlab.config import CHOICES
from fcnlab.errors import ConfigError

LOSSES = CHOICES["loss"]  # the names the config accepts
TERMS = ("ce", "lovasz", "dice")


def loss_terms(name: str) -> tuple[str, ...]:
    """``"ce+lovasz"`` -> ``("ce", "lovasz")``; ConfigError naming the option for unknown names."""
    terms = tuple(t.strip() for t in name.split("+"))
    if not terms or any(t not in TERMS for t in terms) or len(set(terms)) != len(terms):
        raise ConfigError(
            f"option loss (--loss): {name!r} is not one of {', '.join(LOSSES)} "
            f"(or another sum of {', '.join(TERMS)} joined by '+')"
        )
    return terms


def _flatten(
    logits: torch.Tensor, targets: torch.Tensor, ignore_index: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Softmax probabilities ``(P, C)``, one-hot targets ``(P, C)`` and a 0/1 mask ``(P, 1)`` of counted pixels.

    Ignored pixels are zeroed rather than dropped: a boolean selection would wait for the device (its size is
    data-dependent) in every training step on a GPU.
    """
    c = logits.shape[1]
    probs = logits.float().softmax(1).movedim(1, -1).reshape(-1, c)
    labels = targets.reshape(-1)
    valid = (labels != ignore_index).unsqueeze(1).to(probs.dtype)
    # scatter, not F.one_hot, whose range check reads the labels back from a GPU
    fg = torch.zeros_like(probs).scatter_(1, labels.clamp(0, c - 1).unsqueeze(1), 1.0) * valid
    return probs, fg, valid


def _mean_over_present(per_class: torch.Tensor, fg: torch.Tensor) -> torch.Tensor:
    """Mean of ``per_class`` over the classes with at least one target pixel (0 when there are none)."""
    present = (fg.sum(0) > 0).to(per_class.dtype)
    return (per_class * present).sum() / present.sum().clamp_min(1.0)


def lovasz_grad(gt_sorted: torch.Tensor) -> torch.Tensor:
    """Gradient of the Lovasz extension of the Jaccard loss for ground truth sorted by decreasing error.

    ``gt_sorted``: ``(P, ...)`` 0/1 along dim 0 (one column per class). Entry ``i`` is
    ``J(first i + 1 pixels) - J(first i pixels)``, where ``J(M) = 1 - |fg minus M| / |fg union M|`` is
    the Jaccard loss when the pixels in ``M`` are mispredicted.
    """
    gt = gt_sorted.float()
    gts = gt.sum(0)
    intersection = gts - gt.cumsum(0)
    union = gts + (1.0 - gt).cumsum(0)
    jaccard = 1.0 - intersection / union
    if gt.shape[0] > 1:
        jaccard = torch.cat([jaccard[:1], jaccard[1:] - jaccard[:-1]], 0)
    return jaccard


def lovasz_softmax(logits: torch.Tensor, targets: torch.Tensor, ignore_index: int = -100) -> torch.Tensor:
    """Lovasz-softmax loss (mean over present classes of the Lovasz extension of ``1 - IoU``).

    The reference algorithm, vectorised over classes: per class ``c`` the errors ``|[y = c] - p_c|`` are
    sorted in decreasing order and dotted with :func:`lovasz_grad` of the correspondingly sorted
    foreground indicator.
    """
    probs, fg, valid = _flatten(logits, targets, ignore_index)
    # an ignored pixel has error 0 and no foreground: it sorts after every error > 0 and adds nothing
    errors = (fg - probs).abs() * valid
    errors_sorted, perm = torch.sort(errors, dim=0, descending=True)
    fg_sorted = fg.gather(0, perm)
    per_class = (errors_sorted * lovasz_grad(fg_sorted)).sum(0)
    return _mean_over_present(per_class, fg)


def dice_loss(logits: torch.Tensor, targets: torch.Tensor, ignore_index: int = -100, eps: float = 1e-7) -> torch.Tensor:
    """Soft multi-class Dice loss: ``1 - mean_c 2 sum(p_c g_c) / (sum p_c + sum g_c)`` over present classes."""
    probs, fg, valid = _flatten(logits, targets, ignore_index)
    probs = probs * valid
    inter = (probs * fg).sum(0)
    denom = probs.sum(0) + fg.sum(0)
    dice = 2.0 * inter / denom.clamp_min(eps)
    return 1.0 - _mean_over_present(dice, fg)


def segmentation_loss(
    name: str,
    logits: torch.Tensor,
    targets: torch.Tensor,
    *,
    weight: torch.Tensor | None = None,
    ignore_index: int = -100,
) -> torch.Tensor:
    """The loss ``name`` (one of :data:`LOSSES`) of float ``logits`` against ``targets``.

    ``weight`` (per-class) weights the cross-entropy term only; ``ignore_index`` removes pixels from
    every term.
    """
    total: torch.Tensor | None = None
    for term in loss_terms(name):
        if term == "ce":
            value = F.cross_entropy(logits, targets, weight=weight, ignore_index=ignore_index)
        elif term == "lovasz":
            value = lovasz_softmax(logits, targets, ignore_index)
        else:
            value = dice_loss(logits, targets, ignore_index)
        total = value if total is None else total + value
    assert total is not None
    return total
