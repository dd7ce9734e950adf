"""The training engine: NaN/Inf detection, gradient clipping, schedules, data order, run folders, logs."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from fcnlab import runs
from fcnlab.checkpoint import load_checkpoint
from fcnlab.cli.main import main
from fcnlab.config import from_dict
from fcnlab.data.prefetch import Prefetcher
from fcnlab.data.synthetic import make_classification_data
from fcnlab.errors import ConfigError
from fcnlab.runtime import device
from fcnlab.runtime.distributed import DistInfo
from fcnlab.training import optim
from fcnlab.training import state as train_state
from fcnlab.training.state import epoch_batches


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    return make_classification_data(
        tmp_path_factory.mktemp("engine") / "p1", num_classes=4, train_per_class=4, val_per_class=2
    )


def argv(data: Path, out: Path, *extra: str) -> list[str]:
    return [
        "classify",
        "train",
        "--data",
        str(data / "train_50"),
        "--val",
        str(data / "val_50"),
        "--out",
        str(out),
        "--model",
        "resnet18",
        "--num-classes",
        "4",
        "--batch-size",
        "4",
        "--lr",
        "0.01",
        "--device",
        "cpu",
        *extra,
    ]


# -------------------------------------------------------------------------------------------- NaN / Inf
def test_nan_loss_stops_naming_epoch_step_and_last_good_checkpoint(data, tmp_path, capsys, monkeypatch):
    from fcnlab.tasks import ClassificationTask

    original = ClassificationTask.loss
    calls = []

    def loss(self, logits, targets):
        calls.append(1)
        value = original(self, logits, targets)
        return value * float("nan") if len(calls) == 7 else value  # 4 steps per epoch: epoch 2 step 3

    monkeypatch.setattr(ClassificationTask, "loss", loss)
    out = tmp_path / "run"
    assert main(argv(data, out, "--epochs", "3")) == 3
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        f"fcnlab: error: loss became NaN/Inf at epoch 2 step 3; last good checkpoint: {out / 'last.pt'} "
        f"(saved at the end of epoch 1); resume it with --resume {out} --change-settings and a lower --lr "
        f"or a --grad-clip, or check the data"
    ]
    ckpt = load_checkpoint(out / "last.pt")  # untouched by the diverged steps
    assert ckpt["epoch"] == 1 and all(torch.isfinite(v).all() for v in ckpt["model"].values() if v.is_floating_point())
    assert len((out / "metrics.csv").read_text().splitlines()) == 2


def test_inf_loss_in_the_first_epoch_says_no_checkpoint_yet(data, tmp_path, capsys, monkeypatch):
    from fcnlab.tasks import ClassificationTask

    original = ClassificationTask.loss
    monkeypatch.setattr(ClassificationTask, "loss", lambda self, lg, t: original(self, lg, t) * float("inf"))
    assert main(argv(data, tmp_path / "run", "--epochs", "1")) == 3
    err = capsys.readouterr().err
    assert "loss became NaN/Inf at epoch 1 step 1; no checkpoint was written yet" in err


def test_gradient_clipping_bounds_every_update(data, tmp_path, monkeypatch):
    """Plain SGD (no momentum, no weight decay): each step moves a weight by at most lr * clip."""
    initial: dict[str, torch.Tensor] = {}
    build = optim.build_optimizer

    def spy(model, cfg, device, world_size=1):
        initial.update({k: v.detach().clone() for k, v in model.named_parameters()})
        return build(model, cfg, device, world_size)

    monkeypatch.setattr(train_state, "build_optimizer", spy)
    common = [
        "--epochs",
        "1",
        "--momentum",
        "0",
        "--weight-decay",
        "0",
        "--lr",
        "0.5",
        "--warmup-epochs",
        "0",
        "--scheduler",
        "constant",
    ]
    moves = {}
    for clip in ("1e-4", "0"):
        out = tmp_path / f"clip{clip}"
        assert main(argv(data, out, *common, "--grad-clip", clip)) == 0
        final = load_checkpoint(out / "last.pt")["model"]
        moves[clip] = max(float((final[k] - v).abs().max()) for k, v in initial.items())
    steps = 4  # 16 images in batches of 4
    assert moves["1e-4"] <= 0.5 * 1e-4 * steps * (1 + 1e-5)
    assert moves["0"] > 100 * moves["1e-4"]  # without clipping the same steps move weights far more


# ---------------------------------------------------------------------------------- schedule, data order
def test_learning_rate_warmup_then_cosine():
    cfg = from_dict({"epochs": 4, "warmup_epochs": 1, "scheduler": "cosine"})
    factors = [optim.lr_factor(s, cfg, 10) for s in range(40)]
    assert factors[:10] == pytest.approx([(s + 1) / 10 for s in range(10)])
    assert factors[10] == pytest.approx(1.0) and factors[25] == pytest.approx(0.5, abs=0.03)
    assert all(a >= b for a, b in zip(factors[10:], factors[11:], strict=False)) and factors[-1] < 0.01
    step = from_dict({"epochs": 4, "warmup_epochs": 0, "scheduler": "step", "step_size": 2, "gamma": 0.1})
    assert [optim.lr_factor(s, step, 10) for s in (0, 19, 20, 39)] == pytest.approx([1, 1, 0.1, 0.1])


def test_epoch_batches_shard_shuffle_and_never_end_with_one_sample():
    cfg = from_dict({"batch_size": 4, "seed": 5})
    ranks = [epoch_batches(21, cfg, 0, DistInfo(r, 2, r)) for r in range(2)]
    seen = torch.cat([torch.cat(b) for b in ranks])
    assert set(seen.tolist()) == set(range(21))  # DistributedSampler pads 21 to 22: one index twice
    assert [len(b) for b in ranks[0]] == [4, 4, 3] and [len(b) for b in ranks[1]] == [4, 4, 3]
    single = epoch_batches(21, cfg, 0, DistInfo())
    assert [len(b) for b in single] == [4, 4, 4, 4, 4]  # the last batch of 1 is dropped (BatchNorm)
    again = epoch_batches(21, cfg, 0, DistInfo())
    other = epoch_batches(21, cfg, 1, DistInfo())
    assert all(torch.equal(a, b) for a, b in zip(single, again, strict=True))  # the order is a function of epoch
    assert not all(torch.equal(a, b) for a, b in zip(single, other, strict=True))  # set_epoch reshuffles


def test_prefetcher_reraises_errors_instead_of_reusing_a_batch():
    class Broken:
        def batch(self, index):
            if int(index[0]) == 2:
                raise OSError("disk gone")
            return index.float(), index

    batches = [torch.tensor([i]) for i in range(4)]
    got = []
    with pytest.raises(OSError, match="disk gone"):
        for x, _ in Prefetcher(Broken(), batches, pin=False):
            got.append(int(x[0]))
    assert got == [0, 1]


# -------------------------------------------------------------------------------------- run folders, logs
def test_prepare_run_dir_refuses_to_overwrite(tmp_path):
    assert runs.prepare_run_dir(tmp_path / "new", False).is_dir()
    (tmp_path / "file").write_text("x")
    with pytest.raises(ConfigError, match="not a folder"):
        runs.prepare_run_dir(tmp_path / "file", False)
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("mine")
    with pytest.raises(ConfigError, match="already holds other files"):
        runs.prepare_run_dir(other, False)
    early = tmp_path / "early"
    early.mkdir()
    (early / "config.yaml").write_text("task: classify\n")
    with pytest.raises(ConfigError, match="stopped before its first checkpoint"):
        runs.prepare_run_dir(early, False)
    with pytest.raises(ConfigError, match="no last.pt"):
        runs.prepare_run_dir(early, True)


def test_metrics_log_keeps_wall_times_out_of_metrics_csv(tmp_path):
    log = runs.MetricsLog(tmp_path)
    for epoch in (1, 2, 3):
        log.append(
            {"epoch": epoch, "lr": 0.1, "train_loss": 1.0 / epoch, "val_acc": 0.5},
            {"epoch": epoch, "train_seconds": "1.00"},
        )
    reread = runs.MetricsLog(tmp_path)
    reread.truncate(2)  # resuming the checkpoint of epoch 2
    reread.append({"epoch": 3, "lr": 0.1, "train_loss": 0.25, "val_acc": 0.75}, {"epoch": 3, "train_seconds": "2"})
    lines = (tmp_path / "metrics.csv").read_text().splitlines()
    assert lines[0] == ",".join(runs.METRIC_COLUMNS) and len(lines) == 4
    assert lines[3] == "3,0.100000,0.250000,,,0.750000,"
    assert "seconds" not in (tmp_path / "metrics.csv").read_text()
    assert (tmp_path / "timing.csv").read_text().splitlines()[-1] == "3,2"


@pytest.mark.parametrize("name", ["gpu", "cuda:x", "tpu"])
def test_select_device_rejects_unknown_devices(name):
    with pytest.raises(ConfigError, match="--device"):
        device.select_device(name)


def test_run_folder_contents_and_finite_metrics(data, tmp_path):
    out = tmp_path / "run"
    assert main(argv(data, out, "--epochs", "1")) == 0
    names = {p.name for p in out.iterdir()}
    assert {"config.yaml", "model.txt", "env.json", "metrics.csv", "timing.csv", "last.pt", "best.pt"} <= names
    assert not [n for n in names if n.startswith(".")]
    assert (out / "best.pt").samefile(out / "last.pt")
    row = (out / "metrics.csv").read_text().splitlines()[1].split(",")
    assert row[0] == "1" and all(math.isfinite(float(v)) for v in row[1:6])


def test_too_little_training_data_is_a_data_error(tmp_path, capsys):
    one = make_classification_data(tmp_path / "one", num_classes=2, train_per_class=1, val_per_class=1)
    folder = one / "train_50"
    for extra in sorted(folder.glob("*.png"))[1:]:
        extra.unlink()
    assert (
        main(
            [
                "classify",
                "train",
                "--data",
                str(folder),
                "--val",
                str(one / "val_50"),
                "--out",
                str(tmp_path / "run"),
                "--model",
                "resnet18",
                "--num-classes",
                "2",
                "--device",
                "cpu",
            ]
        )
        == 2
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"fcnlab: error: {folder}: holds 1 image; training needs at least 2 (add images or raise --limit)"]
