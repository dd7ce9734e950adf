"""``--time-budget MIN``: epochs cut at the end of the warm-up to what fits the budget, then planned again after each
epoch from the median of the recent ones, down when epochs stay slower and up again (never past the epochs asked
for) when they are faster; the run equals one started with that many epochs, and config.yaml, the checkpoint and
the snapshot epochs say so."""

from __future__ import annotations

import pytest
import torch
import yaml

from fcnlab.checkpoint import load_checkpoint
from fcnlab.cli.main import main
from fcnlab.data.synthetic import make_segmentation_data
from fcnlab.training import budget
from fcnlab.training.budget import epochs_in_budget, keep_to_budget, scale_epochs, typical_epoch_seconds
from train_once import segment_train_argv

TINY = ("--model", "fpn_lite", "--warmup-epochs", "1", "--deterministic", "--limit", "4")


def test_epochs_in_budget_fills_what_is_left_and_keeps_a_margin():
    # 60 min, 2 min used by loading and the first epoch, 60 s an epoch: 58 min * 0.97 = 56.26 -> 56 more
    assert epochs_in_budget(3600, 120, 60, done=1) == 57
    assert epochs_in_budget(3600, 3700, 60, done=1) == 1  # over budget already: the run ends now
    assert epochs_in_budget(600, 100, 1000, done=1) == 1  # not even one more epoch fits


def test_the_checks_go_by_the_median_of_recent_epochs():
    assert typical_epoch_seconds([40.0]) == 40.0
    assert typical_epoch_seconds([32.0, 36.0]) == 32.0  # of two, the lower
    assert typical_epoch_seconds([32.0, 31.4, 34.5, 35.7]) == 32.0
    assert typical_epoch_seconds([90.0, 90.0, 32.0, 33.0, 31.0, 36.0, 34.0]) == 33.0  # the last 5 only


class _Run:
    """keep_to_budget's view of a run of ``asked`` epochs under a 57-minute budget, on a clock that the epochs
    of :meth:`epoch` advance (decoding and the first epoch took 64 s)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, tmp_path, asked: int) -> None:
        from types import SimpleNamespace

        self.cfg = SimpleNamespace(time_budget=57.0, epochs=asked, snapshot_epochs=[5, 48, asked])
        self.state = SimpleNamespace(
            cfg=self.cfg,
            dist=SimpleNamespace(enabled=False, is_main=True),
            started=0.0,
            budget_planned=False,
            budget_epochs_s=[],
            budget_asked=0,
            run_dir=tmp_path,
            epoch=1,
        )
        self.now = 64.0
        monkeypatch.setattr(budget, "save_yaml", lambda cfg, path: None)
        monkeypatch.setattr(budget.time, "perf_counter", lambda: self.now)

    def epoch(self, *seconds: float) -> int:
        for s in seconds:
            self.now += s
            self.state.epoch += 1
            keep_to_budget(self.state, s)  # type: ignore[arg-type]
        return self.cfg.epochs


def test_one_slow_epoch_does_not_cut_but_lasting_slowness_does(tmp_path, monkeypatch, capsys):
    """The run of 2026-12-03: planned 102 epochs from a 32.0 s epoch, then two epochs of 34.5 and 35.7 s (a
    command on the other core) cut it to 92 for good. Now only epochs that stay slower cut it."""
    run = _Run(monkeypatch, tmp_path, asked=140)
    assert run.epoch(32.0) == epochs_in_budget(57 * 60, 96.0, 32.0, 2) == 102
    assert run.epoch(31.4, 34.5, 35.7, 31.8) == 102  # the two slow epochs cut nothing
    assert "-> 102 epochs (was 140); snapshots at epochs 4, 35, 102" in capsys.readouterr().out
    # the median of the last 5 (31.8 s) would hold 103: one more epoch is the margin shrinking, not planned
    assert epochs_in_budget(57 * 60, 64.0 + 32.0 + 31.4 + 34.5 + 35.7 + 31.8 + 31.0, 31.8, 7) == 103
    assert run.epoch(31.0) == 102
    assert run.epoch(45.0) == 95  # the machine stays busy: the median (34.5 s) cuts ...
    assert run.epoch(46.0, 47.0) == 75  # ... and cuts again as the slow epochs become the median
    assert capsys.readouterr().out.count("time budget") == 3


def test_a_slow_planning_epoch_is_made_good_by_the_median_of_the_next(tmp_path, monkeypatch, capsys):
    """The plan goes by the last warm-up epoch; RECENT epochs later it is made again from their median, up to
    the epochs asked for, once."""
    run = _Run(monkeypatch, tmp_path, asked=140)
    assert run.epoch(35.8) == 91  # 2026-12-03, an idle machine: the next epochs took 31-32 s
    assert run.epoch(31.0, 31.5, 31.2) == 91
    median = 31.4  # the middle of 35.8, 31.0, 31.5, 31.2, 31.4
    fits = epochs_in_budget(57 * 60, 64.0 + 35.8 + 31.0 + 31.5 + 31.2 + 31.4, median, 6)
    assert fits == 104 and run.epoch(31.4) == fits - 1  # up, to one fewer than fit
    assert run.cfg.snapshot_epochs[-1] == 103
    assert "31.4 s an epoch (the median of the last 5) -> 103 epochs (was 91)" in capsys.readouterr().out
    fast = _Run(monkeypatch, tmp_path, asked=96)
    assert fast.epoch(35.8, 31.0, 31.5, 31.2, 31.4) == 96  # never more than asked
    assert fast.epoch(*[25.0] * 10) == 96


def test_epochs_cut_by_a_passing_slowdown_come_back(tmp_path, monkeypatch, capsys):
    """The FCN-8s-style rerun of 2026-12-03 (27-minute budget): planned again to 33, then cut to 32 by epochs that
    a test slowed; the epochs sped up again, but the budget then only cut, and 3 minutes went unused."""
    run = _Run(monkeypatch, tmp_path, asked=56)
    run.cfg.time_budget = 27.0
    run.epoch(52.0, 46.2, 46.0, 46.5, 46.3)
    assert run.cfg.epochs == 32
    assert run.epoch(56.0, 57.0, 56.9) == 28  # the median rose to 56 s: cut
    capsys.readouterr()
    assert run.epoch(*[34.0] * 5) == 40  # the test ended: epochs of 34 s again, and the budget plans up
    assert "34.0 s an epoch -> 40 epochs (was 28)" in capsys.readouterr().out
    while run.state.epoch < run.cfg.epochs:  # the rest of the run at that speed ends within the budget
        run.epoch(34.0)
    assert run.state.epoch == 41 and run.now <= 27 * 60 and run.now + 2 * 34.0 > 27 * 60


def test_a_run_that_becomes_faster_plans_up_only_by_the_median_and_only_to_what_was_asked(tmp_path, monkeypatch):
    run = _Run(monkeypatch, tmp_path, asked=140)
    assert run.epoch(40.0) == epochs_in_budget(57 * 60, 104.0, 40.0, 2) == 82
    assert run.epoch(20.0) == 82  # one fast epoch plans nothing up
    assert run.epoch(20.0, 20.0, 20.0) > 82  # the median of 5 (20 s) does
    run.epoch(*[5.0] * 5)
    assert run.cfg.epochs == 140  # never past the epochs asked for


def test_snapshot_epochs_keep_their_place_in_the_run():
    assert scale_epochs([5, 48, 96], 96, 52) == [3, 26, 52]
    assert scale_epochs([5, 25, 50], 50, 30) == [3, 15, 30]
    assert scale_epochs([1, 2, 3], 3, 1) == [1]  # merged, never epoch 0
    # those already taken (or about to be, after epoch `done`) stay; the rest never move before `done`
    assert scale_epochs([5, 48, 96], 96, 92, done=48) == [5, 48, 92]
    assert scale_epochs([5, 46, 92], 92, 96, done=50) == [5, 46, 96]
    assert scale_epochs([5, 48, 96], 96, 20, done=10) == [5, 10, 20]


@pytest.fixture(scope="module")
def tiles(tmp_path_factory: pytest.TempPathFactory):
    return make_segmentation_data(tmp_path_factory.mktemp("budget") / "data", n_train=4, n_val=2, size=64)


def test_budget_sets_the_epochs_once_and_the_run_equals_one_of_that_length(tiles, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("FCNLAB_CACHE", str(tmp_path / "cache"))
    seen = []

    def three(budget_s, elapsed_s, epoch_s, done):  # the plan a real clock would make, made repeatable
        seen.append((budget_s, done, elapsed_s >= epoch_s > 0))
        return 3

    monkeypatch.setattr(budget, "epochs_in_budget", three)
    budgeted = tmp_path / "budgeted"
    argv = segment_train_argv(tiles, budgeted, *TINY, "--time-budget", "30", "--snapshot-epochs", "1,5,10")
    assert main(argv[: argv.index("--epochs") + 1] + ["10"] + argv[argv.index("--epochs") + 2 :]) == 0
    out = capsys.readouterr().out
    # planned after epoch 1 (the minutes in seconds), checked again after epoch 2 (silent: the 3 still fit)
    assert seen == [(1800.0, 1, True), (1800.0, 2, True)]
    assert out.count("time budget 30 min") == 1
    assert "10 epochs x 2 steps" in out
    assert "(at most; --time-budget 30 min: fewer if they do not fit, seen after epoch 1)" in out
    assert "-> 3 epochs (was 10); snapshots at epochs 1, 2, 3" in out
    config = yaml.safe_load((budgeted / "config.yaml").read_text())
    assert config["epochs"] == 3 and config["snapshot_epochs"] == [1, 2, 3] and config["time_budget"] == 30
    ckpt = load_checkpoint(budgeted / "last.pt")
    assert ckpt["epoch"] == 3 and ckpt["budget_planned"] and ckpt["config"]["epochs"] == 3
    assert sorted(p.name for p in (budgeted / "snapshots").glob("epoch_*.png")) == [
        "epoch_001.png",
        "epoch_002.png",
        "epoch_003.png",
    ]
    assert len((budgeted / "metrics.csv").read_text().splitlines()) == 1 + 3

    plain = tmp_path / "plain"
    assert main(segment_train_argv(tiles, plain, *TINY, epochs=3)) == 0
    # the decision falls in the warm-up, where the learning rate does not depend on the epochs: same weights
    planned, fixed = load_checkpoint(budgeted / "last.pt")["model"], load_checkpoint(plain / "last.pt")["model"]
    assert all(torch.equal(planned[k], fixed[k]) for k in fixed)


@pytest.mark.parametrize("warmup", [1, 2])
def test_a_spent_budget_ends_the_run_after_its_warm_up_and_a_resume_keeps_it(
    tiles, tmp_path, monkeypatch, capsys, warmup
):
    monkeypatch.setenv("FCNLAB_CACHE", str(tmp_path / "cache"))
    run = tmp_path / "run"
    argv = segment_train_argv(tiles, run, *TINY, "--time-budget", "0.0001", "--warmup-epochs", str(warmup), epochs=4)
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert f"seen after epoch {warmup})" in out  # the last warm-up epoch is timed, not the first of two
    assert f"-> {warmup} epoch{'s' if warmup > 1 else ''} (was 4)" in out
    assert load_checkpoint(run / "last.pt")["config"]["epochs"] == warmup
    # a resume for more epochs still keeps to the budget (its clock counts the epochs before): one epoch, then cut
    assert main(["segment", "train", "--resume", str(run), "--epochs", "4"]) == 0
    assert f"-> {warmup + 1} epochs (was 4)" in capsys.readouterr().out
    assert load_checkpoint(run / "last.pt")["epoch"] == warmup + 1
    # without the budget the rest is trained
    assert main(["segment", "train", "--resume", str(run), "--epochs", "4", "--time-budget", "0"]) == 0
    assert "time budget" not in capsys.readouterr().out
    assert load_checkpoint(run / "last.pt")["epoch"] == 4


def test_epochs_that_become_slower_are_cut_again(tiles, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("FCNLAB_CACHE", str(tmp_path / "cache"))
    plans = iter([5, 5, 3])  # what fits after epochs 1, 2, 3: the machine got busier after epoch 2

    monkeypatch.setattr(budget, "epochs_in_budget", lambda budget_s, elapsed_s, epoch_s, done: next(plans))
    run = tmp_path / "run"
    assert (
        main(segment_train_argv(tiles, run, *TINY, "--time-budget", "30", "--snapshot-epochs", "2,10", epochs=10)) == 0
    )
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("time budget")]
    assert len(lines) == 2 and lines[0].endswith("-> 5 epochs (was 10); snapshots at epochs 1, 5")
    assert lines[1].endswith("-> 3 epochs (was 5); snapshots at epochs 1, 3")
    assert (
        load_checkpoint(run / "last.pt")["epoch"] == 3
        and yaml.safe_load((run / "config.yaml").read_text())["epochs"] == 3
    )


def test_epochs_that_fit_the_budget_stay(tiles, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("FCNLAB_CACHE", str(tmp_path / "cache"))
    run = tmp_path / "run"
    assert main(segment_train_argv(tiles, run, *TINY, "--time-budget", "600", epochs=2)) == 0
    assert ": the 2 epochs fit" in capsys.readouterr().out
    assert yaml.safe_load((run / "config.yaml").read_text())["epochs"] == 2
    assert load_checkpoint(run / "last.pt")["epoch"] == 2


def test_a_negative_budget_is_refused(tiles, tmp_path, capsys):
    assert main(segment_train_argv(tiles, tmp_path / "r", "--time-budget", "-5")) == 2
    err = capsys.readouterr().err
    assert "--time-budget" in err and "must be >= 0" in err and not (tmp_path / "r").exists()
