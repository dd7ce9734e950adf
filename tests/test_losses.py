"""Segmentation losses against brute-force computations on tiny inputs; the soft-target cross-entropy."""

from __future__ import annotations

import itertools
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from fcnlab.config import from_dict
from fcnlab.errors import ConfigError
from fcnlab.tasks.losses import LOSSES, dice_loss, loss_terms, lovasz_softmax, segmentation_loss
from fcnlab.tasks.segment import UNKNOWN, SegmentationTask, class_weights

C = 4


def jaccard_loss_of_set(fg: list[bool], wrong: set[int]) -> float:
    """Brute force ``1 - |fg minus wrong| / |fg union wrong|`` over explicit pixel sets."""
    fg_set = {i for i, f in enumerate(fg) if f}
    union = fg_set | wrong
    return 1.0 - len(fg_set - wrong) / len(union) if union else 0.0


def lovasz_extension(errors: list[float], fg: list[bool]) -> float:
    """The Lovasz extension by its definition: sort the errors, sum error_i x (J(prefix_i) - J(prefix_i-1))."""
    order = sorted(range(len(errors)), key=lambda i: -errors[i])
    total, prefix, previous = 0.0, set(), 0.0
    for i in order:
        prefix.add(i)
        value = jaccard_loss_of_set(fg, prefix)
        total += errors[i] * (value - previous)
        previous = value
    return total


def brute_force_lovasz(probs: torch.Tensor, labels: torch.Tensor, ignore: int = -100) -> float:
    """Mean over present classes of the Lovasz extension of each class's Jaccard loss (pure Python)."""
    p = probs.permute(0, 2, 3, 1).reshape(-1, probs.shape[1]).tolist()
    y = labels.reshape(-1).tolist()
    keep = [i for i, t in enumerate(y) if t != ignore]
    losses = []
    for c in range(probs.shape[1]):
        fg = [y[i] == c for i in keep]
        if not any(fg):
            continue
        errors = [abs(float(f) - p[i][c]) for f, i in zip(fg, keep, strict=True)]
        losses.append(lovasz_extension(errors, fg))
    return sum(losses) / len(losses)


def test_lovasz_of_hard_predictions_is_one_minus_iou():
    g = torch.Generator().manual_seed(0)
    for _ in range(5):
        labels = torch.randint(0, C, (2, 5, 6), generator=g)
        pred = torch.randint(0, C, (2, 5, 6), generator=g)
        logits = F.one_hot(pred, C).permute(0, 3, 1, 2).float() * 1e4  # softmax is exactly one-hot
        ious = []
        for c in range(C):
            t, p = labels == c, pred == c
            if t.any():
                ious.append((t & p).sum().item() / (t | p).sum().item())
        expected = 1.0 - sum(ious) / len(ious)
        assert lovasz_softmax(logits, labels).item() == pytest.approx(expected, abs=1e-6)


def test_lovasz_of_soft_predictions_is_the_lovasz_extension():
    g = torch.Generator().manual_seed(1)
    for ignore in (-100, 3):
        logits = torch.randn(2, C, 3, 4, generator=g) * 2
        labels = torch.randint(0, C, (2, 3, 4), generator=g)
        labels[0, 0, :2] = 3  # some pixels of the class that may be ignored
        expected = brute_force_lovasz(logits.softmax(1), labels, ignore)
        assert lovasz_softmax(logits, labels, ignore_index=ignore).item() == pytest.approx(expected, abs=1e-6)


def test_lovasz_extension_matches_jaccard_on_all_binary_error_vectors():
    """On 0/1 errors the extension equals the set function itself (checked for every subset)."""
    fg = [True, False, True, True, False]
    for bits in itertools.product([0.0, 1.0], repeat=len(fg)):
        wrong = {i for i, b in enumerate(bits) if b}
        assert lovasz_extension(list(bits), fg) == pytest.approx(jaccard_loss_of_set(fg, wrong))


def test_ignored_pixels_change_nothing():
    g = torch.Generator().manual_seed(2)
    logits = torch.randn(1, C, 4, 4, generator=g)
    labels = torch.randint(0, C - 1, (1, 4, 4), generator=g)
    labels[0, 0] = 255  # ignored row
    for fn in (lovasz_softmax, dice_loss):
        with_row = fn(logits, labels, ignore_index=255)
        without = fn(logits[..., 1:, :], labels[..., 1:, :], ignore_index=255)
        assert with_row.item() == pytest.approx(without.item(), abs=1e-6)


def test_dice_matches_direct_formula():
    g = torch.Generator().manual_seed(3)
    logits = torch.randn(2, C, 5, 5, generator=g)
    labels = torch.randint(0, C - 1, (2, 5, 5), generator=g)  # class C-1 absent: left out of the mean
    p = logits.softmax(1)
    dices = []
    for c in range(C - 1):
        gc = (labels == c).float()
        dices.append(2 * (p[:, c] * gc).sum() / (p[:, c].sum() + gc.sum()))
    expected = 1 - torch.stack(dices).mean()
    assert dice_loss(logits, labels).item() == pytest.approx(expected.item(), abs=1e-6)
    perfect = F.one_hot(labels, C).permute(0, 3, 1, 2).float() * 1e4
    assert dice_loss(perfect, labels).item() == pytest.approx(0.0, abs=1e-6)


@pytest.mark.parametrize("name", LOSSES)
def test_losses_have_finite_gradients_and_sum_their_terms(name):
    g = torch.Generator().manual_seed(4)
    logits = (torch.randn(2, C, 6, 6, generator=g) * 3).requires_grad_()
    labels = torch.randint(0, C, (2, 6, 6), generator=g)
    weight = torch.tensor([0.5, 1.0, 2.0, 1.0])
    loss = segmentation_loss(name, logits, labels, weight=weight, ignore_index=2)
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(logits.grad).all() and logits.grad.abs().sum() > 0
    parts = {
        "ce": F.cross_entropy(logits, labels, weight=weight, ignore_index=2),
        "lovasz": lovasz_softmax(logits, labels, 2),
        "dice": dice_loss(logits, labels, 2),
    }
    expected = sum(parts[t] for t in loss_terms(name))
    assert loss.item() == pytest.approx(expected.item(), rel=1e-6)


def test_lovasz_gradient_lowers_the_loss():
    g = torch.Generator().manual_seed(5)
    logits = torch.randn(1, C, 8, 8, generator=g).requires_grad_()
    labels = torch.randint(0, C, (1, 8, 8), generator=g)
    opt = torch.optim.SGD([logits], lr=100.0)
    first = None
    for _ in range(50):
        loss = lovasz_softmax(logits, labels)
        first = first if first is not None else loss.item()
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < first * 0.5


def test_all_pixels_ignored_gives_zero_lovasz():
    logits = torch.randn(1, C, 2, 2, requires_grad=True)
    labels = torch.full((1, 2, 2), 255)
    loss = lovasz_softmax(logits, labels, ignore_index=255)
    loss.backward()
    assert loss.item() == 0.0 and torch.isfinite(logits.grad).all()


def test_unknown_loss_name_is_a_config_error():
    with pytest.raises(ConfigError, match="--loss"):
        loss_terms("focal")
    with pytest.raises(ConfigError, match="--loss"):
        loss_terms("ce+ce")
    assert loss_terms("lovasz+ce") == ("lovasz", "ce")


def test_classification_loss_takes_mixed_targets_with_label_smoothing():
    """The classification loss takes CutMix/MixUp probabilities q as well as class indices: the smoothed
    target of q is (1 - s) q + s / C, and one-hot probabilities give the loss of class indices."""
    from fcnlab.config import from_dict
    from fcnlab.tasks import make_task

    s = 0.2
    task = make_task(from_dict({"task": "classify", "model": "airnet", "num_classes": 4, "label_smoothing": s}))
    g = torch.Generator().manual_seed(7)
    logits = torch.randn(5, 4, generator=g)
    y = torch.tensor([0, 3, 1, 2, 3])
    q = torch.softmax(torch.randn(5, 4, generator=g), 1)
    expect = -(((1 - s) * q + s / 4) * torch.log_softmax(logits, 1)).sum(1).mean()
    torch.testing.assert_close(task.loss(logits, q), expect)
    torch.testing.assert_close(task.loss(logits, F.one_hot(y, 4).float()), task.loss(logits, y))


# ------------------------------------------------------------------------------------------- class weights
# Pixel shares of the 1,800 real training masks reduced to 128 px (load_tile_set(...).class_pixel_counts(7),
# rounded): urban, agriculture, rangeland, forest, water, barren, unknown (not scored by the course's mIoU).
SHARES = np.array([0.1047, 0.5905, 0.0841, 0.1136, 0.0308, 0.0757, 0.0006])


def test_median_weights_come_from_the_scored_classes_only():
    w = class_weights(SHARES * 1e6, "median", unscored=6).numpy()
    scored = SHARES[:6] / SHARES[:6].sum()
    assert np.allclose(w[:6], np.median(scored) / scored)
    assert w[6] == 1.0  # not ~130x the median class, which made models paint unknown over everything
    assert w[4] > w[2] > 1.0 > w[1]  # water (3 %) > rangeland (8 %) > median > agriculture (57 %)


def test_inverse_weights_and_an_ignored_unknown():
    w = class_weights(SHARES * 1e6, "inverse", unscored=6, ignored=True).numpy()
    scored = SHARES[:6] / SHARES[:6].sum()
    assert np.allclose(w[:6], 1.0 / (6 * scored)) and w[6] == 0.0
    assert class_weights(SHARES, "none", unscored=6) is None


def test_absent_classes_weigh_nothing():
    counts = np.array([10, 30, 0, 60, 0, 0, 0])
    w = class_weights(counts, "median", unscored=6).numpy()
    assert w[2] == 0 and w[4] == 0 and w[5] == 0 and w[1] == 1.0 and w[6] == 1.0


def test_the_task_leaves_unknown_out_of_the_frequencies(monkeypatch, tmp_path):
    masks = torch.zeros(2, 32, 32, dtype=torch.uint8)
    masks[0, :2] = UNKNOWN  # rare: weighted by its own frequency it would weigh the most
    masks[1, :8] = 2
    tiles = SimpleNamespace(
        images=torch.zeros(2, 3, 32, 32),
        masks=masks,
        reduction=1,
        files=[tmp_path / "0000_sat.jpg"],
        class_pixel_counts=lambda n: np.bincount(masks.flatten().numpy(), minlength=n),
    )
    monkeypatch.setattr("fcnlab.data.segmentation.load_tile_set", lambda *a, **k: tiles)
    for ignore, unknown_weight in ((False, 1.0), (True, 0.0)):
        cfg = {"task": "segment", "num_classes": 7, "class_weights": "median", "ignore_unknown": ignore}
        task = SegmentationTask(from_dict({**cfg, "data": str(tmp_path)}))
        task.load_train()
        assert task.loss_weight is not None and task.loss_weight[UNKNOWN] == unknown_weight
        assert task.loss_weight[2] > 1.0 > task.loss_weight[0]
