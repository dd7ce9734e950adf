"""``--time-budget MIN``: the number of epochs that fit a wall-clock budget, set from the speed of the epochs.

A recipe's ``epochs`` is right for the machine it was measured on; on a slower CPU (no AVX-512, so bf16 runs in
fp32) the same epochs overrun the hour. With a budget the run times the last epoch of its warm-up (the first epoch
without one; training and validation) and, if the epochs would not fit the budget counted from the start of the
command (data decoding included), cuts them to what fits; it never trains more than the epochs asked for (a large
``--epochs`` fills the budget). Up to then the learning rate does not depend on the number of epochs, so on a steady
machine the run is the same as one started with ``--epochs N``; ``config.yaml`` and the checkpoints record ``N``.
The last warm-up epoch rather than the first: the first also pays for one-time costs (the first oneDNN calls, the
data pages read in). After each later epoch the run plans again from the median of the last :data:`RECENT` epochs,
down to what still fits or up to what the time left holds again (never past the epochs asked for); the cosine
decay then spans the epochs left from there. The median, not the last epoch: two epochs slowed by 3-4 s by a
passing command cut a 57-minute run from 102 to 92 epochs, for good; and up as well as down, because a
slowdown passes: three epochs slowed by a test cut a 33-epoch plan to 32 and left 3 minutes of a 27-minute
budget unused, and on an idle 2-core laptop a last warm-up epoch of 35.8 s planned 91 epochs where the next
ones took 31-32 s.
"""

from __future__ import annotations

import math
import statistics
import time

import torch

from fcnlab.config import TrainConfig
from fcnlab.recipes import save_yaml
from fcnlab.runs import CONFIG
from fcnlab.runtime import distributed as dist_utils
from fcnlab.training.state import TrainState

#: Share of the remaining budget left unplanned: epochs vary a little, and the mask snapshots and the last
#: checkpoint write come after the last epoch.
MARGIN = 0.03
#: Epochs whose median speed the checks after the plan go by: a lasting slowdown shows after 3 of them.
RECENT = 5
#: A later check plans up only when this many more epochs fit (and adds one fewer): one more comes and goes with
#: the margin, which shrinks with the time left, and with epochs a little slower than their median.
UP_BY = 2


def planning_epoch(cfg: TrainConfig) -> int:
    """The epoch after which the budget is planned: the last one that ends within the warm-up (at least the first)."""
    return max(1, math.floor(cfg.warmup_epochs))


def epochs_in_budget(budget_s: float, elapsed_s: float, epoch_s: float, done: int) -> int:
    """Epochs of a run that has ``done`` epochs after ``elapsed_s`` seconds, at ``epoch_s`` seconds each, so that
    it ends within ``budget_s`` seconds (never fewer than ``done``)."""
    left = (budget_s - elapsed_s) * (1.0 - MARGIN)
    return done + max(0, math.floor(left / max(epoch_s, 1e-9)))


def typical_epoch_seconds(seconds: list[float]) -> float:
    """The epoch time the later checks go by: the median of the last :data:`RECENT` epochs' ``seconds`` (of an
    even count, the lower middle one)."""
    return float(statistics.median_low(seconds[-RECENT:]))


def scale_epochs(epochs: list[int], old: int, new: int, done: int = 0) -> list[int]:
    """Snapshot epochs at the same fractions of the run when its length changes from ``old`` to ``new`` epochs
    (5, 48, 96 of 96 -> 3, 26, 52 of 52): an early, a middle and the final epoch stay so. Those up to ``done``
    (the epoch just trained, whose snapshot comes next) are taken or about to be and stay; the others move no
    earlier than ``done``, so none is skipped."""
    kept = {e for e in epochs if e <= done}
    return sorted(kept | {min(new, max(1, done, round(e * new / old))) for e in epochs if e > done})


def keep_to_budget(state: TrainState, epoch_seconds: float) -> None:
    """``--time-budget``, after an epoch of ``epoch_seconds``: set ``cfg.epochs`` (and the snapshot epochs to come)
    to what fits the time left. The first call (the plan, at the end of the warm-up) goes by that epoch and says what
    it decided; the later ones go by the median of the last :data:`RECENT` epochs and say when they change the plan:
    down when epochs became slower (a busier machine), up again, never past the epochs asked for, when they became
    faster than planned; the first check by a median of :data:`RECENT` epochs says so.

    Every process takes the slowest process's times, so all decide the same. The learning-rate schedule reads
    ``cfg.epochs`` at each step, so the cosine decay spans the epochs left from now on.
    """
    cfg, dist = state.cfg, state.dist
    elapsed = time.perf_counter() - state.started
    if dist.enabled:
        ms = dist_utils.max_over_processes(torch.tensor([int(elapsed * 1000), int(epoch_seconds * 1000)]))
        elapsed, epoch_seconds = ms[0] / 1000, ms[1] / 1000
    old, first = cfg.epochs, not state.budget_planned
    if first:
        state.budget_asked = old
    state.budget_epochs_s.append(epoch_seconds)
    median = not first and len(state.budget_epochs_s) >= RECENT
    epoch_seconds = epoch_seconds if first else typical_epoch_seconds(state.budget_epochs_s)
    fits = epochs_in_budget(cfg.time_budget * 60, elapsed, epoch_seconds, state.epoch)
    # Up only by a median of RECENT epochs (one fast epoch plans nothing), never past the epochs asked for, when at
    # least UP_BY more fit, and to one fewer than fit: the margin shrinks with the time left, and epochs a little
    # slower than the median would otherwise take back at once the epoch just added (seen: 22 -> 24 -> 23).
    if median and fits >= old + UP_BY:
        fits = min(fits - 1, max(old, state.budget_asked))
    else:
        fits = min(fits, old)
    state.budget_planned = True
    head = f"time budget {cfg.time_budget:g} min: {elapsed / 60:.1f} min used, {epoch_seconds:.1f} s an epoch"
    if len(state.budget_epochs_s) == RECENT and not first:  # this command's first check by a whole median
        head += f" (the median of the last {RECENT})"
    if fits == old:
        if dist.is_main and first:
            print(f"{head}: {'the 1 epoch fits' if old == 1 else f'the {old} epochs fit'}", flush=True)
        return
    cfg.epochs = fits
    if cfg.snapshot_epochs:
        cfg.snapshot_epochs = scale_epochs(cfg.snapshot_epochs, old, cfg.epochs, done=state.epoch)
    if dist.is_main:
        save_yaml(cfg, state.run_dir / CONFIG)
        snaps = f"; snapshots at epochs {', '.join(map(str, cfg.snapshot_epochs))}" if cfg.snapshot_epochs else ""
        print(f"{head} -> {cfg.epochs} epoch{'s' if cfg.epochs != 1 else ''} (was {old}){snaps}", flush=True)
