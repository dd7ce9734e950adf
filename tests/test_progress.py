"""Progress of long phases: a bar on a terminal; off a terminal, time-based lines with ETA (first one soon)."""

from __future__ import annotations

import io

import pytest

from fcnlab.runtime import progress as progress_mod
from fcnlab.runtime.progress import Progress, fmt_duration, track


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    c = Clock()
    monkeypatch.setattr(progress_mod.time, "perf_counter", c)
    return c


def test_lines_every_interval_with_eta_and_a_first_line_soon(clock):
    out = io.StringIO()
    p = Progress(100, "epoch 1/5", unit="step", interval=30, quiet=0, terminal=False, stream=out)
    for _ in range(100):
        clock.now += 2.0  # 2 s per step: lines at step 1, then every 15 steps (30 s), and at the end
        p.update(loss=0.5)
    lines = out.getvalue().splitlines()
    assert lines[0] == "epoch 1/5 step 1/100 loss 0.5000 (2s, ETA 3m18s)"
    assert lines[1] == "epoch 1/5 step 16/100 loss 0.5000 (32s, ETA 2m48s)"
    assert lines[-1] == "epoch 1/5 step 100/100 loss 0.5000 (3m20s, ETA 0s)"
    assert len(lines) == 1 + 6 + 1  # steps 1, 16, 31, ..., 91, then 100


def test_log_every_still_adds_lines(clock):
    out = io.StringIO()
    p = Progress(10, "x", interval=1000, quiet=0, log_every=4, terminal=False, stream=out)
    for _ in range(10):
        clock.now += 0.1
        p.update()
    assert [line.split()[2] for line in out.getvalue().splitlines()] == ["1/10", "4/10", "8/10", "10/10"]


def test_short_phases_stay_quiet(clock):
    out = io.StringIO()
    for _ in track(range(5), 5, "decode p2", unit="image", quiet=3, terminal=False, stream=out):
        clock.now += 0.5
    assert out.getvalue() == ""
    for _ in track(range(5), 5, "decode p2", unit="image", quiet=3, terminal=False, stream=out):
        clock.now += 1.0
    assert out.getvalue().splitlines() == ["decode p2 image 3/5 (3s, ETA 2s)", "decode p2 image 5/5 (5s, ETA 0s)"]


def test_only_rank_0_reports(clock, monkeypatch):
    monkeypatch.setenv("RANK", "1")
    out = io.StringIO()
    p = Progress(2, "x", quiet=0, terminal=False, stream=out)
    p.update()
    p.update()
    assert out.getvalue() == "" and p.step == 2


def test_fmt_duration():
    assert [fmt_duration(s) for s in (0.4, 59, 61, 3599, 3661)] == ["0s", "59s", "1m01s", "59m59s", "1h01m"]


def test_tsne_iterations_drive_the_progress(monkeypatch):
    import numpy as np

    from fcnlab.report.tsne import embed

    out = io.StringIO()

    class Loud(Progress):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **{**kwargs, "quiet": 0, "interval": 0, "terminal": False, "stream": out})

    monkeypatch.setattr(progress_mod, "Progress", Loud)
    x = np.random.default_rng(0).normal(size=(60, 8)).astype(np.float32)
    quiet = embed(x, max_iter=300, progress=False)
    assert out.getvalue() == ""
    shown = embed(x, max_iter=300)
    np.testing.assert_array_equal(quiet, shown)  # the display changes nothing
    lines = out.getvalue().splitlines()
    assert lines[0].startswith("t-SNE of 60 points iteration 50/300 (") and "ETA" in lines[0]
    assert all(line.startswith("t-SNE of 60 points iteration ") for line in lines)


def test_training_prints_a_summary_first_then_step_lines_and_validation_progress(tmp_path, capsys, monkeypatch):
    import fcnlab.tasks.base as base
    from fcnlab.cli.main import main
    from fcnlab.data.synthetic import make_classification_data
    from train_once import classify_train_argv

    seen = []

    class Recording(Progress):
        def __init__(self, total, desc, **kwargs):
            seen.append((desc, total))
            super().__init__(total, desc, **kwargs)

    monkeypatch.setattr(base, "Progress", Recording)
    data = make_classification_data(tmp_path / "p1", num_classes=4, train_per_class=4, val_per_class=2)
    run = tmp_path / "run"
    assert main(classify_train_argv(data, run)) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == f"fcnlab: starting P1 classification training of resnet18 in {run} on cpu; loading data ..."
    assert lines[1] == f"  data: 16 training images ({data / 'train_50'}), 8 validation ({data / 'val_50'})"
    assert lines[2].startswith("  model: resnet18, ") and lines[2].endswith(" trainable), from scratch")
    assert lines[3] == "  schedule: 2 epochs x 2 steps of 8 images; sgd lr 0.05, cosine"
    assert lines[4] == f"  config: {run / 'config.yaml'} (resolved; the command line is in {run / 'env.json'})"
    assert lines[5].startswith("epoch 1/2 step 1/2 loss ") and "ETA" in lines[5]  # right after the first step
    assert seen == [("epoch 1/2 validation", 8), ("epoch 2/2 validation", 8)]
