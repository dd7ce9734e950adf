"""The GPU training/eval path without host syncs, checked on the CPU.

* ``Task.evaluate`` gathers batches with the training ``Prefetcher`` and reads the device once, with the
  same numbers as a plain batch-by-batch computation;
* class weights of the segmentation loss are copied to the device once;
* ``train_one_epoch`` reads device values (and, under DDP, all-reduces the stop flags) only at its sync
  steps, so with ``sync_every > 1`` (as on a GPU) no other step waits for the device; a signal is honoured
  at the next sync step and every rank stops at the same step (real two-process gloo run).
"""

from __future__ import annotations

import gc
import json
import math
import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from fcnlab.checkpoint import load_checkpoint
from fcnlab.config import TrainConfig, from_dict
from fcnlab.errors import TrainingDiverged
from fcnlab.runtime.distributed import DistInfo
from fcnlab.tasks import ClassificationTask, SegmentationTask, Task
from fcnlab.tasks import base as task_base
from fcnlab.tasks.metrics import course_miou
from fcnlab.training import loop
from fcnlab.training.signals import Interrupted
from fcnlab.training.state import TrainState

TESTS = Path(__file__).resolve().parent


class ArrayData:
    """An in-memory data set with the decoded sets' ``batch`` interface."""

    def __init__(self, images: torch.Tensor, targets: torch.Tensor):
        self.images, self.targets = images, targets

    def __len__(self) -> int:
        return len(self.images)

    def batch(self, index: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.images[index], self.targets[index]


def class_data(n: int, num_classes: int = 3, size: int = 32, seed: int = 0) -> ArrayData:
    g = torch.Generator().manual_seed(seed)
    return ArrayData(
        torch.randint(0, 256, (n, 3, size, size), dtype=torch.uint8, generator=g),
        torch.randint(0, num_classes, (n,), generator=g),
    )


def class_model(num_classes: int = 3) -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(
        torch.nn.Conv2d(3, num_classes, 3, padding=1), torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten()
    )


# ------------------------------------------------------------------------------------------- evaluate
def reference_eval(
    task: Task, model: torch.nn.Module, data: ArrayData, rank: int, world: int, bs: int
) -> tuple[float, int, np.ndarray]:
    """The straightforward computation: this rank's shard batch by batch, float64 loss sum, numpy matrix."""
    n_cls = task.cfg.num_classes
    loss_sum, count, mat = 0.0, 0, np.zeros((n_cls, n_cls), dtype=np.int64)
    index = list(range(rank, len(data), world))
    with torch.no_grad():
        for start in range(0, len(index), bs):
            images, targets = data.batch(torch.tensor(index[start : start + bs]))
            logits = model(task.prepare_eval(images)).float()
            loss_sum += float(F.cross_entropy(logits, targets, reduction="sum").double())
            count += targets.numel()
            pred = logits.argmax(1)
            np.add.at(mat, (targets.reshape(-1).numpy(), pred.reshape(-1).numpy()), 1)
    return loss_sum, count, mat


@pytest.mark.parametrize(("rank", "world"), [(0, 1), (1, 2)])
def test_classify_evaluate_equals_a_plain_batch_by_batch_computation(rank, world):
    cfg = from_dict({"task": "classify", "num_classes": 3, "batch_size": 2, "eval_batch_size": 4, "image_size": 32})
    task = ClassificationTask(cfg)
    data, model = class_data(11), class_model()  # 11 images: shards of 11 and 5, the last batch is partial
    metrics, conf = task.evaluate(model, data, torch.device("cpu"), rank, world)
    loss_sum, count, mat = reference_eval(task, model, data, rank, world, bs=4)
    assert count == len(range(rank, 11, world))
    assert np.array_equal(conf.mat.numpy(), mat)
    assert metrics["val_loss"] == loss_sum / count  # same per-batch float64 sums in the same order: exact
    assert metrics["val_acc"] == np.trace(mat) / mat.sum()
    assert not model.training


def test_segment_evaluate_equals_a_plain_batch_by_batch_computation():
    cfg = from_dict({"task": "segment", "num_classes": 7, "batch_size": 2, "image_size": 32})
    task = SegmentationTask(cfg)
    g = torch.Generator().manual_seed(1)
    data = ArrayData(
        torch.randint(0, 256, (5, 3, 16, 16), dtype=torch.uint8, generator=g),
        torch.randint(0, 7, (5, 16, 16), generator=g),
    )
    torch.manual_seed(0)
    model = torch.nn.Conv2d(3, 7, 3, padding=1)
    metrics, conf = task.evaluate(model, data, torch.device("cpu"))
    loss_sum, count, mat = reference_eval(task, model, data, 0, 1, bs=4)  # eval_batch_size 0: 2 x batch_size
    assert count == 5 * 16 * 16 and np.array_equal(conf.mat.numpy(), mat)
    assert metrics["val_loss"] == loss_sum / count
    assert metrics["val_acc"] == np.trace(mat) / mat.sum()
    result = course_miou(mat)
    assert metrics["val_miou"] == (result.mean if not math.isnan(result.mean) else result.mean_present)
    assert [metrics[f"iou_{i}"] for i in range(6)] == [float(v) for v in result.per_class]


def test_evaluate_gathers_batches_with_the_prefetcher(monkeypatch):
    """Same data path as training: Prefetcher over this rank's batches, pinned only for CUDA."""
    made: list[tuple[list[torch.Tensor], bool]] = []
    original = task_base.Prefetcher

    class Spy(original):
        def __init__(self, data: Any, batches: list[torch.Tensor], pin: bool):
            made.append((batches, pin))
            super().__init__(data, batches, pin)

    monkeypatch.setattr(task_base, "Prefetcher", Spy)
    cfg = from_dict({"task": "classify", "num_classes": 3, "batch_size": 2, "eval_batch_size": 3, "image_size": 32})
    ClassificationTask(cfg).evaluate(class_model(), class_data(9), torch.device("cpu"), 1, 2)
    assert len(made) == 1
    batches, pin = made[0]
    assert pin is False
    assert [b.tolist() for b in batches] == [[1, 3, 5], [7]]
    assert loop.Prefetcher is original  # the engine trains with the very same class


def test_evaluate_with_an_empty_shard_gives_zero_counts():
    cfg = from_dict({"task": "classify", "num_classes": 3, "batch_size": 2, "image_size": 32})
    metrics, conf = ClassificationTask(cfg).evaluate(class_model(), class_data(1), torch.device("cpu"), 1, 2)
    assert metrics == {"val_loss": 0.0, "val_acc": 0.0} and int(conf.mat.sum()) == 0


# -------------------------------------------------------------------------------------- class weights
def weighted_task() -> SegmentationTask:
    task = SegmentationTask(from_dict({"task": "segment", "num_classes": 7, "class_weights": "inverse"}))
    task.loss_weight = torch.tensor([0.5, 1.0, 2.0, 1.5, 1.0, 3.0, 0.0])
    return task


def test_class_weights_are_moved_to_the_device_once(monkeypatch):
    """On the meta device (a real move, like CPU -> GPU) every loss call uses one cached weight tensor."""
    seen: list[torch.Tensor | None] = []
    original = F.cross_entropy

    def spy(*args: Any, **kwargs: Any) -> torch.Tensor:
        seen.append(kwargs.get("weight"))
        return original(*args, **kwargs)

    monkeypatch.setattr(F, "cross_entropy", spy)
    task = weighted_task()
    logits = torch.empty(2, 7, 4, 4, device="meta")
    targets = torch.empty(2, 4, 4, dtype=torch.int64, device="meta")
    for _ in range(3):
        task.loss(logits, targets)
    assert len(seen) == 3 and seen[0] is not None and seen[0].device.type == "meta"
    assert seen[1] is seen[0] and seen[2] is seen[0]  # copied once, not per step
    task.loss_weight = torch.ones(7)  # replaced (e.g. load_train again): copied anew
    task.loss(logits, targets)
    assert seen[3] is not seen[0] and seen[3].device.type == "meta"


def test_weighted_loss_values_and_backward_after_a_first_call_in_inference_mode():
    task = weighted_task()
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 7, 4, 4, generator=g)
    targets = torch.randint(0, 7, (2, 4, 4), generator=g)
    with torch.inference_mode():  # the cached copy must still be usable by autograd later
        task.loss(logits, targets)
    assert task.loss_weight_on(torch.device("cpu")) is task.loss_weight_on(torch.device("cpu"))
    leaf = logits.clone().requires_grad_()
    loss = task.loss(leaf, targets)
    loss.backward()
    expected = F.cross_entropy(logits, targets, weight=task.loss_weight, ignore_index=-100)
    assert torch.equal(loss.detach(), expected) and leaf.grad is not None


def test_no_class_weights_means_no_weight():
    task = SegmentationTask(from_dict({"task": "segment", "num_classes": 7}))
    assert task.loss_weight_on(torch.device("cpu")) is None


# ----------------------------------------------------------------------------------- train_one_epoch
class TinyTask(Task):
    """A classification task without augmentation, with a hook run before each loss."""

    name = "classify"
    metric = "val_acc"

    def __init__(self, cfg: TrainConfig):
        super().__init__(cfg)
        self.calls = 0
        self.before_loss: Callable[[int], None] = lambda call: None
        self.nan_at: int | None = None

    def prepare_eval(self, images: torch.Tensor) -> torch.Tensor:
        return images.float() / 255

    def prepare_train(
        self, images: torch.Tensor, targets: torch.Tensor, gen: torch.Generator
    ) -> tuple[torch.Tensor, torch.Tensor]:
        return self.prepare_eval(images), targets

    def loss(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        self.before_loss(self.calls)
        value = F.cross_entropy(logits, targets)
        if self.calls == self.nan_at:
            value = value * float("nan")
        self.calls += 1
        return value


def make_state(run_dir: Path, dist: DistInfo = DistInfo(), steps: int = 8) -> TrainState:
    """A TrainState over ``steps`` batches of 2 per rank, as ``fit`` builds one (tiny model, SGD)."""
    cfg = from_dict(
        {
            "task": "classify",
            "num_classes": 3,
            "batch_size": 2,
            "epochs": 1,
            "lr": 0.01,
            "device": "cpu",
            "log_every": 1000,
        }
    )
    model = class_model()
    if dist.enabled and torch.distributed.is_initialized():
        model = torch.nn.parallel.DistributedDataParallel(model)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: 1.0)
    scaler = torch.amp.GradScaler("cpu", enabled=False)
    gen = torch.Generator().manual_seed(dist.rank)
    data = class_data(2 * steps * dist.world_size, size=8)
    return TrainState(
        cfg,
        TinyTask(cfg),
        run_dir,
        model,
        optimizer,
        scheduler,
        scaler,
        torch.device("cpu"),
        None,
        gen,
        dist,
        data,
        data,
    )


class HostReads:
    """Counts the Python-level reads of tensor values (each one a host sync when the tensor is on a GPU)."""

    METHODS = ("item", "tolist", "__bool__", "__int__", "__float__", "__index__")

    def __init__(self, monkeypatch: pytest.MonkeyPatch):
        self.count = 0
        for name in self.METHODS:
            original = getattr(torch.Tensor, name)

            def wrapper(t: torch.Tensor, *args: Any, _original: Any = original, **kwargs: Any) -> Any:
                self.count += 1
                return _original(t, *args, **kwargs)

            monkeypatch.setattr(torch.Tensor, name, wrapper)


@pytest.mark.parametrize("world", [1, 2])
def test_device_values_are_read_once_per_sync_step_only(tmp_path, monkeypatch, world):
    """sync_every 4 (a GPU's log_every): 8 more steps add 2 sync steps, each one read of the device.

    (Other reads per epoch, e.g. the sampler's shuffled order on the host, do not depend on the steps.)
    """
    monkeypatch.setattr(loop, "sync_interval", lambda cfg, dev: 4)
    reads = HostReads(monkeypatch)
    counts, agreed = {}, {}
    for steps in (8, 16):
        state = make_state(tmp_path / str(steps), DistInfo(0, world, 0), steps=steps)
        agreed[steps] = []
        monkeypatch.setattr(
            loop, "_agree_on_stop", lambda flags, state=state, steps=steps: agreed[steps].append(state.step_in_epoch)
        )
        before = reads.count
        stats = loop.train_one_epoch(state, 0)
        counts[steps] = reads.count - before
        assert state.epoch_accum["batches"] == steps and state.epoch_accum["count"] == 2 * steps
        assert math.isfinite(stats["train_loss"]) and 0 <= stats["train_acc"] <= 1
    assert counts[16] - counts[8] == 2
    # the DDP stop all-reduce happens at the sync steps only
    assert agreed == ({8: [4, 8], 16: [4, 8, 12, 16]} if world == 2 else {8: [], 16: []})


def test_ddp_stop_flags_are_agreed_at_sync_steps_and_the_last_step(tmp_path, monkeypatch):
    state = make_state(tmp_path, DistInfo(0, 2, 0), steps=7)
    agreed: list[int] = []
    monkeypatch.setattr(loop, "sync_interval", lambda cfg, dev: 3)
    monkeypatch.setattr(loop, "_agree_on_stop", lambda flags: agreed.append(state.step_in_epoch))
    loop.train_one_epoch(state, 0)
    assert agreed == [3, 6, 7]


def test_ddp_signal_is_honoured_at_the_next_sync_step(tmp_path, monkeypatch):
    state = make_state(tmp_path, DistInfo(0, 2, 0))
    monkeypatch.setattr(loop, "sync_interval", lambda cfg, dev: 3)
    state.task.before_loss = lambda call: setattr(state, "stop_signal", signal.SIGTERM) if call == 0 else None
    with pytest.raises(Interrupted, match="stopped by SIGTERM at epoch 1 step 3;") as err:
        loop.train_one_epoch(state, 0)
    assert err.value.exit_code == 143
    ckpt = load_checkpoint(tmp_path / "last.pt")
    assert ckpt["step_in_epoch"] == 3 and ckpt["epoch_accum"]["batches"] == 3


def test_single_process_signal_still_stops_after_the_current_step(tmp_path, monkeypatch):
    state = make_state(tmp_path)
    monkeypatch.setattr(loop, "sync_interval", lambda cfg, dev: 3)
    state.task.before_loss = lambda call: setattr(state, "stop_signal", signal.SIGINT) if call == 0 else None
    with pytest.raises(Interrupted, match="stopped by SIGINT at epoch 1 step 1;"):
        loop.train_one_epoch(state, 0)
    assert load_checkpoint(tmp_path / "last.pt")["step_in_epoch"] == 1


def test_ddp_stops_when_another_rank_was_signalled(tmp_path, monkeypatch):
    """This rank has no signal; the all-reduced flags say another one has: it stops at the same step."""
    state = make_state(tmp_path, DistInfo(0, 2, 0))
    monkeypatch.setattr(loop, "sync_interval", lambda cfg, dev: 3)

    def other_rank_signalled(flags: torch.Tensor) -> None:
        if state.step_in_epoch == 6:
            flags[0] = 0

    monkeypatch.setattr(loop, "_agree_on_stop", other_rank_signalled)
    with pytest.raises(Interrupted, match="at epoch 1 step 6;"):
        loop.train_one_epoch(state, 0)


@pytest.mark.parametrize(("other_rank_bad", "named"), [(None, 2), (0, 1)])
def test_ddp_nan_is_found_at_the_sync_step_and_names_the_earliest_bad_step(
    tmp_path, monkeypatch, other_rank_bad, named
):
    state = make_state(tmp_path, DistInfo(0, 2, 0))
    state.task.nan_at = 1  # this rank's loss is NaN at step 2 (1-based)
    monkeypatch.setattr(loop, "sync_interval", lambda cfg, dev: 3)

    def agree(flags: torch.Tensor) -> None:
        if other_rank_bad is not None:
            flags[1] = min(int(flags[1]), other_rank_bad)

    monkeypatch.setattr(loop, "_agree_on_stop", agree)
    with pytest.raises(TrainingDiverged, match=f"loss became NaN/Inf at epoch 1 step {named};"):
        loop.train_one_epoch(state, 0)
    assert state.step_in_epoch == 3  # found at the first sync step, not at once


def _ddp_worker(rank: int, rendezvous: str, run_dir: str, result: str) -> None:
    """One rank of the two-process gloo run of ``test_two_gloo_ranks_stop_at_the_same_step``."""
    torch.distributed.init_process_group("gloo", init_method=f"file://{rendezvous}", rank=rank, world_size=2)
    loop.sync_interval = lambda cfg, dev: 3
    agreed: list[int] = []
    original = loop._agree_on_stop
    out: dict[str, Any] = {}
    try:
        # a SIGTERM reaches rank 1 only, during its first step: both ranks stop after step 3
        state = make_state(Path(run_dir), DistInfo(rank, 2, rank))
        if rank == 1:
            state.task.before_loss = lambda c: setattr(state, "stop_signal", signal.SIGTERM) if c == 0 else None

        def spy(flags: torch.Tensor) -> None:
            agreed.append(state.step_in_epoch)
            original(flags)

        loop._agree_on_stop = spy
        try:
            loop.train_one_epoch(state, 0)
            out["signal"] = "finished"
        except Interrupted as e:
            out["signal"] = f"{e} exit {e.exit_code}"
        out["signal_agreed"] = list(agreed)
        # rank 0's loss is NaN at step 5 (DDP spreads it: rank 1's at step 6): both name step 5 at step 6
        Path(run_dir, "nan").mkdir(exist_ok=True)
        state = make_state(Path(run_dir) / "nan", DistInfo(rank, 2, rank))
        if rank == 0:
            state.task.nan_at = 4
        try:
            loop.train_one_epoch(state, 0)
            out["nan"] = "finished"
        except TrainingDiverged as e:
            out["nan"] = f"{str(e).split(';')[0]} found after step {state.step_in_epoch}"
    finally:
        Path(result).write_text(json.dumps(out))
        # free the DDP models (held in reference cycles by the lambdas above) while the interpreter is fully
        # alive: a gloo process group released during interpreter shutdown can abort ("terminate called")
        state = None  # noqa: F841
        gc.collect()
        torch.distributed.destroy_process_group()


@pytest.mark.slow
def test_two_gloo_ranks_stop_at_the_same_step(tmp_path):
    """Real DDP (gloo, two processes, sync_every 3): a signal on one rank and a NaN on the other rank."""
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    env = {
        **os.environ,
        "OMP_NUM_THREADS": "1",
        "PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")]),
    }
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-c",
                "import sys; from test_training_gpu_path import _ddp_worker; "
                "_ddp_worker(int(sys.argv[1]), *sys.argv[2:])",
                str(rank),
                str(tmp_path / "rdv"),
                str(run_dir),
                str(tmp_path / f"rank{rank}.json"),
            ],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for rank in (0, 1)
    ]
    try:
        outputs = [p.communicate(timeout=240) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:  # a rank left waiting in a collective: the ranks disagreed
                p.kill()
    for p, (stdout, stderr) in zip(procs, outputs, strict=True):
        assert p.returncode == 0, stdout[-2000:] + stderr[-3000:]
    results = [json.loads((tmp_path / f"rank{rank}.json").read_text()) for rank in (0, 1)]
    for res in results:
        assert res["signal"].startswith("stopped by SIGTERM at epoch 1 step 3;") and res["signal"].endswith("143")
        assert res["signal_agreed"] == [3]
        assert res["nan"] == "loss became NaN/Inf at epoch 1 step 5 found after step 6"
    ckpt = load_checkpoint(run_dir / "last.pt")  # written by rank 0, with both ranks' RNG states
    assert ckpt["step_in_epoch"] == 3 and len(ckpt["rng_ranks"]) == 2
