"""One training epoch: ``train_one_epoch(state, epoch)``.

On a GPU the training step never waits for the host: the loss, accuracy counts and the NaN/Inf check
stay on the device and are read every ``sync_every`` steps (:func:`sync_interval`: ``log_every`` on GPUs,
every step on the CPU). Under DDP the ranks agree on stopping (signal or NaN/Inf) at those same steps, so a
SIGINT/SIGTERM is honoured within ``sync_every`` steps there (after the current step in one process).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from fcnlab.config import TrainConfig
from fcnlab.data.prefetch import Prefetcher
from fcnlab.errors import TrainingDiverged
from fcnlab.models.memory_format import to_channels_last, use_channels_last
from fcnlab.runtime import distributed as dist_utils
from fcnlab.runtime.device import autocast
from fcnlab.training.progress import StepProgress
from fcnlab.training.signals import interrupted
from fcnlab.training.state import TrainState, epoch_batches


def sync_interval(cfg: TrainConfig, device: torch.device) -> int:
    """Steps between the training loop's reads of device values (``sync_every``).

    Every step on the CPU (nothing runs ahead there); ``log_every`` steps on a GPU, where each read waits
    for every queued kernel. Under DDP the ranks agree on stopping only at these steps (and the last step of
    an epoch); they depend only on the step index, so every rank takes part in the same all-reduces.
    """
    return 1 if device.type == "cpu" else max(1, cfg.log_every)


_NO_BAD_STEP = 2**62  # "no NaN/Inf loss yet" in the stop flags (larger than any step index)


def _agree_on_stop(flags: torch.Tensor) -> None:
    """Element-wise minimum over all ranks, in place, of ``[keep going (1/0), first NaN/Inf step]``.

    Every rank goes on only if all do, and all name the earliest bad step. No-op in a single process; the
    caller reads the result (one host sync together with the loss sums).
    """
    if dist_utils.is_dist():
        torch.distributed.all_reduce(flags, op=torch.distributed.ReduceOp.MIN)


def _read(values: Sequence[torch.Tensor]) -> list[float]:
    """Scalars on the device as Python floats, in one device-to-host copy (one host sync)."""
    return torch.stack([v.reshape(()).to(torch.float64) for v in values]).tolist()


def train_one_epoch(state: TrainState, epoch: int) -> dict[str, float]:
    """Train one epoch from ``state.step_in_epoch`` (0, or where an interrupted run stopped).

    Device values (loss and accuracy sums, the first NaN/Inf step) are read only at sync steps: every
    :func:`sync_interval` steps and the epoch's last step; in a single process also at the step after which
    a SIGINT/SIGTERM arrived. Under DDP the stop flags are all-reduced at the sync steps only, on every rank
    at the same step indices, so a signal is honoured within ``sync_every`` steps and every rank stops (or
    raises the NaN/Inf error) at the same step.
    """
    cfg, task, model, dev = state.cfg, state.task, state.model, state.device
    model.train()
    batches = epoch_batches(len(state.train_data), cfg, epoch, state.dist, state.task.sample_factors)
    start = state.step_in_epoch
    acc = state.epoch_accum
    progress = StepProgress(state.dist.is_main, len(batches), start, f"epoch {epoch + 1}/{cfg.epochs}", cfg.log_every)
    loss_dev = torch.zeros((), dtype=torch.float64, device=dev)
    correct_dev = torch.zeros((), dtype=torch.float64, device=dev)
    bad_step = torch.full((), -1, dtype=torch.int64, device=dev)
    count, pending = 0.0, 0
    sync_every = sync_interval(cfg, dev)
    channels_last = use_channels_last(cfg.channels_last, cfg.model, cfg.image_size, dev)
    try:
        for i, (x, y) in enumerate(Prefetcher(state.train_data, batches[start:], dev.type == "cuda"), start=start):
            state.saver.check()  # a failed background checkpoint write (a full disk) stops training now
            x = x.to(dev, non_blocking=True)
            y = y.to(dev, non_blocking=True)
            x, y = task.prepare_train(x, y, state.gen)
            x = to_channels_last(x, channels_last)
            with autocast(dev, state.amp):
                logits = model(x)
                loss = task.loss(logits.float(), y)
            bad_step.masked_fill_((~torch.isfinite(loss)) & (bad_step < 0), i)  # no host sync
            state.optimizer.zero_grad(set_to_none=True)
            state.scaler.scale(loss).backward()
            if cfg.grad_clip:
                state.scaler.unscale_(state.optimizer)
                torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            state.scaler.step(state.optimizer)
            state.scaler.update()
            state.scheduler.step()
            if state.ema is not None:
                state.ema.update(model)
            state.global_step += 1
            with torch.no_grad():
                c, n = task.correct(logits.detach(), y)
                loss_dev += loss.detach().double()
                correct_dev += c.double()
                count += n
            pending += 1
            state.step_in_epoch = i + 1
            last = i + 1 == len(batches)
            signalled = state.stop_signal is not None
            # sync steps depend on the step index only, so under DDP every rank joins the same all-reduces;
            # one process may also stop at once (nothing to agree on)
            stop = False
            if (i + 1) % sync_every == 0 or last or (signalled and not state.dist.enabled):
                flags = torch.stack(
                    [
                        torch.full_like(bad_step, int(not signalled)),  # fills: no host-to-device copy
                        torch.where(bad_step >= 0, bad_step, _NO_BAD_STEP),
                    ]
                )
                if state.dist.enabled:  # every rank takes the same decision at the same step
                    _agree_on_stop(flags)
                loss_v, correct_v, go, first_bad = _read([loss_dev, correct_dev, flags[0], flags[1]])  # one sync
                if first_bad < _NO_BAD_STEP:
                    _diverged(state, epoch, int(first_bad))
                stop = go == 0
                acc["loss"] += loss_v
                acc["correct"] += correct_v
                acc["count"] += count
                acc["batches"] += pending
                loss_dev.zero_()
                correct_dev.zero_()
                count, pending = 0.0, 0
                progress.update(acc["loss"] / max(acc["batches"], 1))
            else:
                progress.update(None)
            if stop and not last:
                state.save("last.pt")
                raise interrupted(state)
    finally:
        progress.close()
    totals = torch.tensor([acc["loss"], acc["correct"], acc["count"], acc["batches"]], dtype=torch.float64, device=dev)
    loss_sum, correct, n, n_batches = dist_utils.all_reduce_sum(totals).tolist()  # every rank's share under DDP
    return {"train_loss": loss_sum / max(n_batches, 1), "train_acc": correct / max(n, 1)}


def _diverged(state: TrainState, epoch: int, step: int) -> None:
    """Stop: the loss of ``step`` (0-based) was NaN/Inf. Nothing is saved, so last.pt stays good."""
    state.saver.wait()  # the previous epoch's checkpoint may still be being written in the background
    good = state.run_dir / "last.pt"
    if good.is_file():
        at = f" (saved at {state.last_saved})" if state.last_saved else ""
        where = (
            f"last good checkpoint: {good}{at}; resume it with --resume {state.run_dir} --change-settings "
            f"and a lower --lr or a --grad-clip, or check the data"
        )
    else:
        where = "no checkpoint was written yet; lower --lr, set --grad-clip, or check the data"
    raise TrainingDiverged(f"loss became NaN/Inf at epoch {epoch + 1} step {step + 1}; {where}")
