"""ConfusionMatrix's sync-free update (the GPU evaluation hot path): same counts and errors, on read."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from course_reference import confusion_counts
from fcnlab.tasks.metrics import ConfusionMatrix


def maps(seed: int, shape=(2, 13, 11), n=7):
    rng = np.random.default_rng(seed)
    target = rng.integers(0, n, size=shape)
    pred = np.where(rng.random(shape) < 0.6, target, rng.integers(0, n, size=shape))
    return torch.from_numpy(target), torch.from_numpy(pred)


def test_deferred_counts_equal_the_eager_counts():
    eager, deferred = ConfusionMatrix(7), ConfusionMatrix(7, deferred_checks=True)
    assert not eager.deferred_checks and deferred.deferred_checks
    expected = np.zeros((7, 7), dtype=np.int64)
    for seed in range(3):
        t, p = maps(seed)
        eager.update(t, p)
        deferred.update(t.to(torch.uint8), p.to(torch.int32))
        expected += confusion_counts(t.numpy(), p.numpy(), 7)
    assert np.array_equal(deferred.numpy(), expected)
    assert np.array_equal(eager.numpy(), expected)
    assert deferred.mat.dtype == torch.int64
    deferred.update(torch.zeros(0, dtype=torch.int64), torch.zeros(0, dtype=torch.int64))  # empty: no-op
    assert np.array_equal(deferred.numpy(), expected)


def test_deferred_ignore_index_skips_labels_and_their_predictions():
    cm = ConfusionMatrix(3, ignore_index=255, deferred_checks=True)
    cm.update(torch.tensor([0, 255, 2, 255]), torch.tensor([0, 1, 1, 9]))  # 9 at an ignored pixel is fine
    assert cm.numpy().tolist() == [[1, 0, 0], [0, 0, 0], [0, 1, 0]]


@pytest.mark.parametrize(
    ("target", "pred", "message"),
    [
        ([0, 7], [0, 0], r"label value 7 is outside \[0, 3\)"),
        ([-1, 0], [0, 0], r"label value -1 is outside"),
        ([0, 1], [0, 3], r"prediction value 3 is outside"),
    ],
)
def test_deferred_errors_name_the_value_when_the_counts_are_read(target, pred, message):
    cm = ConfusionMatrix(3, deferred_checks=True)
    cm.update(torch.tensor(target), torch.tensor(pred))  # no error yet: no host sync in update
    with pytest.raises(ValueError, match=message):
        cm.mat  # noqa: B018
    with pytest.raises(ValueError, match=message):
        cm.numpy()
    assert int(cm._mat.sum()) == 1  # the out-of-range pixel was not counted, the valid one was
    cm.reset()
    assert cm.numpy().sum() == 0  # reset clears the recorded error too


def test_ignore_hint_in_deferred_label_errors():
    cm = ConfusionMatrix(3, ignore_index=255, deferred_checks=True)
    cm.update(torch.tensor([0, 4]), torch.tensor([0, 0]))
    with pytest.raises(ValueError, match=r"label value 4 is outside \[0, 3\) \(ignore_index is 255\)"):
        cm.numpy()


def test_all_reduce_carries_the_deferred_range(tmp_path):
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1)
    try:
        cm = ConfusionMatrix(2, deferred_checks=True)
        cm.update(torch.tensor([0, 1, 1]), torch.tensor([0, 1, 0]))
        cm.all_reduce()
        assert cm.numpy().tolist() == [[1, 0], [1, 1]]
        cm.update(torch.tensor([5]), torch.tensor([0]))
        cm.all_reduce()
        with pytest.raises(ValueError, match="label value 5"):
            cm.numpy()
    finally:
        dist.destroy_process_group()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU: checks that update never syncs")
def test_cuda_update_never_synchronises_with_the_host():
    dev = torch.device("cuda")
    cm = ConfusionMatrix(7, dev, ignore_index=255)
    assert cm.deferred_checks
    t, p = maps(0, shape=(4, 64, 64))
    t, p = t.to(dev), p.to(dev)
    t[0, 0, 0] = 255
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        for _ in range(3):
            cm.update(t, p)
    finally:
        torch.cuda.set_sync_debug_mode("default")
    keep = (t != 255).cpu().numpy()
    expected = 3 * confusion_counts(t.cpu().numpy()[keep], p.cpu().numpy()[keep], 7)
    assert np.array_equal(cm.numpy(), expected)
