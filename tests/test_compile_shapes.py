"""Compiled training keeps one batch shape per mode, and the learning rate scales with the batch when asked.

The shapes matter on a GPU (a new batch size means a recompile and, with ``reduce-overhead``, a new CUDA
graph); what decides them is plain Python, checked here on the CPU with a backend that only records the
graphs torch.compile hands it (no Inductor build, so the test is fast).
"""

from __future__ import annotations

import math

import pytest
import torch

from fcnlab.config import from_dict
from fcnlab.data.sampling import fill_last_batch
from fcnlab.data.synthetic import make_classification_data
from fcnlab.errors import ConfigError
from fcnlab.runtime import device as device_mod
from fcnlab.runtime.device import is_compiled
from fcnlab.runtime.distributed import DistInfo
from fcnlab.tasks import make_task
from fcnlab.training.fit import fit
from fcnlab.training.optim import build_optimizer, peak_lr
from fcnlab.training.state import epoch_batches
from tiny_model import registered_tiny, tiny_cnn, tiny_config


@pytest.fixture(autouse=True)
def _tiny_model():
    yield from registered_tiny()


@pytest.fixture(scope="module")
def p1(tmp_path_factory):
    # 5 classes x 9 = 45 training images, 5 x 3 = 15 validation images: ragged with batch 16 / eval batch 8
    return make_classification_data(tmp_path_factory.mktemp("p1"), num_classes=5, train_per_class=9, val_per_class=3)


def config(p1, **kw):
    return tiny_config(p1, **{"batch_size": 16, "eval_batch_size": 8, **kw})


@pytest.mark.parametrize("n", [45, 47, 64, 10])
def test_compiled_epochs_have_one_batch_size_and_every_sample(n):
    cfg = from_dict({"batch_size": 16, "compile": True})
    for epoch in (0, 1):
        batches = epoch_batches(n, cfg, epoch, DistInfo())
        assert {len(b) for b in batches} == {min(16, n)}
        assert len(batches) == math.ceil(n / 16)
        seen = torch.cat(batches)
        assert set(seen.tolist()) == set(range(n))  # every sample; the fill repeats a few of the epoch's first


def test_eager_epochs_keep_the_ragged_last_batch():
    cfg = from_dict({"batch_size": 16})
    assert [len(b) for b in epoch_batches(45, cfg, 0, DistInfo())] == [16, 16, 13]
    assert [len(b) for b in epoch_batches(33, cfg, 0, DistInfo())] == [16, 16]  # a batch of 1: dropped


def test_fill_last_batch_fills_from_the_start_of_the_order():
    order = torch.tensor([5, 3, 9, 0, 7, 1, 8, 2, 6, 4])
    filled = fill_last_batch(list(order.split(4)), order, 4)
    assert [b.tolist() for b in filled] == [[5, 3, 9, 0], [7, 1, 8, 2], [6, 4, 5, 3]]
    assert [b.tolist() for b in fill_last_batch(list(order[:3].split(4)), order[:3], 4)] == [[5, 3, 9]]  # one batch
    assert fill_last_batch([], order[:0], 4) == []


class _Recorder(torch.nn.Module):
    """Looks like a torch.compile wrapper (``_orig_mod``) and records the batch sizes it is called with."""

    def __init__(self, inner: torch.nn.Module):
        super().__init__()
        self._orig_mod = inner
        self.sizes: list[int] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.sizes.append(x.shape[0])
        return self._orig_mod(x)


def test_evaluation_of_a_compiled_model_sees_one_shape_and_the_same_metrics(p1):
    cfg = config(p1)
    task = make_task(cfg)
    data = task.load_val()
    torch.manual_seed(0)
    model = tiny_cnn(5)
    model.train()
    model(torch.randn(8, 3, 32, 32))  # non-trivial BatchNorm statistics
    eager, _ = task.evaluate(model, data, torch.device("cpu"))
    wrapped = _Recorder(model)
    assert is_compiled(wrapped) and not is_compiled(model)
    padded, conf = task.evaluate(wrapped, data, torch.device("cpu"))
    assert wrapped.sizes == [8, 8]  # 15 images: 8 + 7 padded to 8
    assert int(conf.mat.sum()) == len(data) == 15
    assert padded == pytest.approx(eager, rel=1e-6)


@pytest.mark.slow
def test_compiled_training_compiles_one_graph_per_mode(p1, tmp_path, monkeypatch):
    """A real ``fit(compile=True)`` over ragged data: dynamo hands the backend one training and one evaluation
    graph (batch 16 and 8), none for the short last batches, and compile_model asks for static shapes."""
    graphs: list[int] = []
    kwargs: dict = {}
    real = torch.compile

    def record(gm, example_inputs):
        # the images among the inputs (parameters are inputs too): N x 3 x 32 x 32
        graphs.append(
            next(
                t.shape[0] for t in example_inputs if isinstance(t, torch.Tensor) and tuple(t.shape[1:]) == (3, 32, 32)
            )
        )
        return gm.forward

    def spy(model, **kw):
        kwargs.update(kw)
        return real(model, backend=record, dynamic=kw.get("dynamic"))

    monkeypatch.setattr(device_mod.torch, "compile", spy)
    torch._dynamo.reset()
    fit(config(p1, compile=True), tmp_path / "run")
    torch._dynamo.reset()
    assert kwargs["dynamic"] is False
    assert sorted(graphs) == [8, 16]


def test_lr_scales_with_the_global_batch():
    assert peak_lr(from_dict({"lr": 0.2, "batch_size": 1024})) == 0.2  # lr_base_batch 0: as given
    linear = from_dict({"lr": 0.2, "batch_size": 1024, "lr_base_batch": 256})
    assert peak_lr(linear) == pytest.approx(0.8)
    assert peak_lr(linear, world_size=2) == pytest.approx(1.6)
    sqrt = from_dict({"lr": 0.2, "batch_size": 1024, "lr_base_batch": 256, "lr_scaling": "sqrt"})
    assert peak_lr(sqrt) == pytest.approx(0.4)
    optimizer = build_optimizer(tiny_cnn(5), linear, torch.device("cpu"), world_size=4)
    assert [g["lr"] for g in optimizer.param_groups] == pytest.approx([3.2] * len(optimizer.param_groups))
    with pytest.raises(ConfigError, match="lr_scaling"):
        from_dict({"lr_scaling": "cubic"})
    with pytest.raises(ConfigError, match="lr_base_batch"):
        from_dict({"lr_base_batch": -1})


def test_the_run_uses_and_reports_the_scaled_lr(p1, tmp_path, capsys):
    fit(config(p1, epochs=1, lr=0.05, lr_base_batch=8, warmup_epochs=0, scheduler="constant"), tmp_path / "run")
    out = capsys.readouterr().out
    assert "lr 0.1 (0.05 per 8 images, linear scaling to a batch of 16)" in out
    header, row = (tmp_path / "run" / "metrics.csv").read_text().splitlines()
    assert float(row.split(",")[header.split(",").index("lr")]) == pytest.approx(0.1)
