"""``fit``: train a model into a run folder, or resume one exactly where it stopped.

Features: CUDA autocast (bf16, or fp16 with GradScaler), channels_last, optional torch.compile before DDP,
torchrun DDP with DistributedSampler (``set_epoch`` every epoch), per-epoch ``metrics.csv`` and
``timing.csv`` (:mod:`fcnlab.runs`), atomic ``last.pt``/``best.pt``, SIGINT/SIGTERM -> resumable checkpoint
after the current step (exit 130/143, :mod:`fcnlab.training.signals`), exact resume (RNG states and data
position saved), NaN/Inf loss detection (:mod:`fcnlab.training.loop`).
"""

from __future__ import annotations

import contextlib
import math
import os
import sys
import time
from pathlib import Path
from typing import Any

import torch

from fcnlab.checkpoint import remove_stale_temp_files
from fcnlab.config import TrainConfig, from_dict
from fcnlab.errors import ConfigError, DataError
from fcnlab.models.memory_format import to_channels_last, use_channels_last
from fcnlab.recipes import save_yaml
from fcnlab.runs import (
    BEST,
    CONFIG,
    LAST,
    MODEL_TXT,
    TRAIN_LOG,
    MetricsLog,
    claim_run_dir,
    format_row,
    prepare_run_dir,
    record_command,
)
from fcnlab.runtime import distributed as dist_utils
from fcnlab.runtime.console_log import console_log
from fcnlab.runtime.device import device_name, environment, seed_everything, select_device
from fcnlab.runtime.files import atomic_link, atomic_write_bytes, atomic_write_text
from fcnlab.runtime.progress import main_process
from fcnlab.runtime.provenance import command_entry, command_line
from fcnlab.tasks import make_task, task_info
from fcnlab.tasks.base import Task
from fcnlab.training.budget import keep_to_budget, planning_epoch
from fcnlab.training.hooks import epoch_hooks
from fcnlab.training.loop import train_one_epoch
from fcnlab.training.preflight import check_options
from fcnlab.training.resume import (
    archive_name,
    check_changes,
    check_resume,
    check_unchanged,
    finished,
    load_resume_checkpoint,
    resume_finished,
)
from fcnlab.training.signals import finishing_writes, install_signal_handlers, interrupted, restore_signal_handlers
from fcnlab.training.state import TrainState, build_state, fresh_accum, restore_state
from fcnlab.training.summary import startup_summary


def resume_config(
    out: str | Path,
    overrides: dict[str, Any],
    task: str | None = None,
    start: str = "last",
    change_settings: bool = False,
) -> tuple[TrainConfig, dict[str, Any]]:
    """The config and checkpoint to resume the run in ``out``: ``last.pt``'s (``start="best"``: ``best.pt``'s)
    config with ``overrides`` (e.g. a larger ``epochs``) applied.

    Refused with one line: a run another process holds, a checkpoint of another task than ``task`` (the
    command's), overrides that change the model's shapes, the settings of epochs already trained (unless
    ``change_settings``), or fewer ``epochs`` than trained (:mod:`fcnlab.training.resume`).
    """
    ckpt = load_resume_checkpoint(out, start)
    check_resume(ckpt, out, task, overrides)
    source = f"{out}/{ckpt['source']['name']}"
    cfg = from_dict({**ckpt["config"], **overrides}, source)
    # compared resolved (defaults of keys an older checkpoint lacks, values as parsed): what really changes
    ckpt["changed_settings"] = check_changes(
        ckpt, out, from_dict(ckpt["config"], source).to_dict(), cfg.to_dict(), change_settings
    )
    return cfg, ckpt


def fit(
    cfg: TrainConfig, out: str | Path, ckpt: dict[str, Any] | None = None, config_changed: bool = False
) -> dict[str, Any]:
    """Train a model as ``cfg`` says, writing the run folder ``out``; returns the final summary dict.

    With ``ckpt`` (``out/last.pt``, from :func:`resume_config`) training continues exactly where it
    stopped: model, optimizer, scheduler, scaler, every RNG (torch, CUDA, numpy, python, augmentation; per
    rank under DDP) and the position in the epoch's data order are restored, so on the CPU with
    ``deterministic`` the result equals an uninterrupted run. ``config_changed``: the resumed run's config
    differs from the checkpoint's (``config.yaml`` is rewritten).

    The run folder is locked for the whole call (:func:`fcnlab.runs.claim_run_dir`): a second process that
    trains or resumes into it is refused with this one's PID.
    """
    if cfg.data is None or cfg.val is None:
        raise ConfigError("options --data and --val are required (training and validation folders)")
    started = time.perf_counter()  # --time-budget counts the whole command, data loading included
    main_rank = main_process()
    for line in check_options(cfg):  # before the run folder exists: a mistake leaves nothing behind
        if main_rank:
            print(f"fcnlab: warning: {line}", file=sys.stderr, flush=True)
    source = (ckpt.get("source") or {}).get("name", LAST) if ckpt is not None else LAST
    # rank 0 alone owns the folder under torchrun (before the process group exists, RANK says which)
    lock = claim_run_dir(out, ckpt is not None, source) if main_rank else None
    try:
        if ckpt is not None and lock is not None:
            check_unchanged(ckpt, Path(out))
        device_type = (
            "cuda" if (cfg.device.startswith("cuda") or (cfg.device == "auto" and torch.cuda.is_available())) else "cpu"
        )
        dist = dist_utils.init_distributed(device_type)
        deterministic_before = torch.are_deterministic_algorithms_enabled()
        try:
            return _fit(cfg, Path(out), ckpt, dist, config_changed, started)
        finally:
            torch.use_deterministic_algorithms(deterministic_before)
            dist_utils.shutdown()
    finally:
        if lock is not None:
            lock.release()


def _open_run_dir(out: Path, ckpt: dict[str, Any] | None) -> Path:
    """Create the run folder, or tidy the one being resumed after a kill."""
    source = (ckpt.get("source") or {}).get("name", LAST) if ckpt is not None else LAST
    run_dir = prepare_run_dir(out, ckpt is not None, source)
    if ckpt is not None:
        remove_stale_temp_files(run_dir)  # left by a SIGKILL during a save
        last, best = run_dir / LAST, run_dir / BEST
        if (
            source == LAST
            and ckpt["best_epoch"] == ckpt["epoch"]
            and ckpt["step_in_epoch"] == 0
            and not (best.is_file() and os.path.samefile(last, best))
        ):
            atomic_link(last, best)  # killed between saving last.pt and linking best.pt
    return run_dir


def _load_data(task: Task, dist: dist_utils.DistInfo, device: torch.device) -> tuple[Any, Any]:
    """The training and validation sets; the main process prints what is worth knowing about them.

    With ``resident`` they move to the GPU when they fit (:func:`fcnlab.data.resident.make_resident`);
    on the CPU, or when they do not fit, they stay the host data sets, so the path is today's.
    """
    train_data = task.load_train()
    val_data = task.load_val()
    if dist.is_main:
        for name, d in (("train", train_data), ("val", val_data)):
            rep = getattr(d, "off_palette", None)
            if rep is not None and rep.summary():
                print(f"note ({name}): {rep.summary()}", flush=True)
        line = task.check_train_data(train_data)
        if line:
            print(f"fcnlab: warning: {line}", file=sys.stderr, flush=True)
    if task.cfg.resident:
        from fcnlab.data.resident import make_resident

        train_data, note = make_resident(train_data, device)
        if dist.is_main:
            print(f"note (train): {note}", flush=True)
        val_data, note = make_resident(val_data, device)
        if dist.is_main:
            print(f"note (val): {note}", flush=True)
    return train_data, val_data


def _build_model(
    cfg: TrainConfig,
    ckpt: dict[str, Any] | None,
    device: torch.device,
    dist: dist_utils.DistInfo,
    run_dir: Path,
    config_changed: bool,
) -> torch.nn.Module:
    """The model on ``device`` (the checkpoint's weights when resuming); a new run's files are written."""
    from fcnlab.models import build_model

    kwargs = {} if cfg.learn_upsampling is None else {"learn_upsampling": cfg.learn_upsampling}
    model = build_model(
        cfg.model,
        cfg.num_classes,
        pretrained=cfg.pretrained and ckpt is None,
        weights=cfg.weights if ckpt is None else None,
        **kwargs,
    )
    if ckpt is not None:
        try:
            model.load_state_dict(ckpt["model"])
        except (RuntimeError, KeyError) as e:  # shapes are checked before; this is an edited or damaged file
            first = str(e).splitlines()[0] if str(e) else type(e).__name__
            raise DataError(
                f"{run_dir}: the checkpoint's weights do not fit model {cfg.model} with "
                f"{cfg.num_classes} classes ({first}); it is damaged or was edited"
            ) from None
    model.to(device)
    if dist.is_main and ckpt is None:
        atomic_write_text(run_dir / MODEL_TXT, f"{model}\n")
        save_yaml(cfg, run_dir / CONFIG)
    elif dist.is_main and config_changed and ckpt is not None:
        archive = run_dir / archive_name(ckpt)
        if ckpt.get("changed_settings") and (run_dir / CONFIG).is_file() and not archive.exists():
            atomic_write_bytes(archive, (run_dir / CONFIG).read_bytes())  # what the trained epochs ran with
        save_yaml(cfg, run_dir / CONFIG)  # e.g. --epochs extended on resume
    if cfg.sync_bn and dist.enabled:
        model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
    return to_channels_last(model, use_channels_last(cfg.channels_last, cfg.model, cfg.image_size, device))


def _fit(
    cfg: TrainConfig,
    out: Path,
    ckpt: dict[str, Any] | None,
    dist: dist_utils.DistInfo,
    config_changed: bool,
    started: float,
) -> dict[str, Any]:
    device = select_device(cfg.device, dist.local_rank)
    if cfg.sync_bn and dist.enabled and device.type != "cuda":
        raise ConfigError(
            "option sync_bn (--sync-bn): SyncBatchNorm works on GPUs only; drop --sync-bn for CPU (gloo) runs"
        )
    run_dir = dist_utils.on_main(lambda: _open_run_dir(out, ckpt), out)  # an error there stops every rank
    if ckpt is not None and finished(ckpt, cfg.epochs):
        return resume_finished(cfg, run_dir, ckpt, dist)
    # the main process keeps its console output in the run folder, each resume appended
    header = f"=== {'resume' if ckpt is not None else 'train'}: {command_line()}"
    with console_log(run_dir / TRAIN_LOG, header) if dist.is_main else contextlib.nullcontext():
        return _start(cfg, run_dir, ckpt, dist, config_changed, device, started)


def _start(
    cfg: TrainConfig,
    run_dir: Path,
    ckpt: dict[str, Any] | None,
    dist: dist_utils.DistInfo,
    config_changed: bool,
    device: torch.device,
    started: float,
) -> dict[str, Any]:
    """Load the data, build the model and state (restored when resuming), then train.

    ``started``: ``time.perf_counter()`` when the command began (the clock of ``--time-budget``).
    """
    if dist.is_main:  # a first line at once: decoding the data may take minutes
        what = "resuming" if ckpt is not None else "starting"
        where = device_name(device) + (f" ({dist.world_size} processes)" if dist.enabled else "")
        print(
            f"fcnlab: {what} {task_info(cfg.task).label} training of {cfg.model} in {run_dir} on {where}; "
            f"loading data ...",
            flush=True,
        )
    seed_everything(cfg.seed + dist.rank, cfg.deterministic)
    task = make_task(cfg)
    train_data, val_data = _load_data(task, dist, device)
    model = _build_model(cfg, ckpt, device, dist, run_dir, config_changed)
    if dist.is_main:
        _record_command(run_dir, cfg, device, ckpt is not None, len(train_data), len(val_data))
    state = build_state(cfg, task, run_dir, model, device, dist, train_data, val_data)
    if ckpt is not None:
        restore_state(state, ckpt)
    # a resumed run's budget also counts the epochs of the commands before (their time in timing.csv)
    before = sum(float(r.get("epoch_seconds", 0)) for r in (state.history or {}).get("timing", []))
    state.started = started - before
    if dist.is_main:
        print(startup_summary(state, model), flush=True)
    return _train(state, model)


def _record_command(
    run_dir: Path, cfg: TrainConfig, device: torch.device, resumed: bool, n_train: int, n_val: int
) -> None:
    """env.json: hardware and versions (a new run), and this command appended to its ``commands`` with the data
    it read (``data`` at the top: what the latest epochs of metrics.csv were validated on)."""

    data = {
        "train": {"path": str(Path(str(cfg.data)).resolve()), "count": n_train, "limit": cfg.limit},
        "val": {"path": str(Path(str(cfg.val)).resolve()), "count": n_val, "limit": cfg.val_limit},
    }
    entry = command_entry("resume" if resumed else "train", device=device_name(device), data=data)
    base = None if resumed else {**environment(), "device": device_name(device)}
    record_command(run_dir, entry, base, {"data": data})


def _train(state: TrainState, model: torch.nn.Module) -> dict[str, Any]:
    """The epochs from ``state.epoch`` to ``cfg.epochs``: train, evaluate, checkpoint, log, hooks."""
    cfg, task, dist, device, run_dir = state.cfg, state.task, state.dist, state.device, state.run_dir
    train_data, val_data = state.train_data, state.val_data
    log = MetricsLog(run_dir)
    log.restore(state.history, state.epoch)  # rows a kill took away after their checkpoint are written back
    state.history = {"metrics": [dict(r) for r in log.rows], "timing": [dict(r) for r in log.timing]}
    hooks = epoch_hooks(state)
    previous = install_signal_handlers(state)
    try:
        while state.epoch < cfg.epochs:
            stop = state.stop_signal is not None  # a signal during the last evaluation: last.pt is up to date
            if dist.enabled:  # all ranks stop here, or none
                stop = bool(dist_utils.max_over_processes(torch.tensor([int(stop)], device=device))[0])
            if stop:
                raise interrupted(state)
            epoch = state.epoch
            whole_epoch = state.step_in_epoch == 0  # (a resumed part of an epoch does not time one)
            t0 = time.perf_counter()
            if state.step_in_epoch == 0 or state.epoch_lr is None:
                state.epoch_lr = state.optimizer.param_groups[0]["lr"]
            stats = train_one_epoch(state, epoch)
            train_time = time.perf_counter() - t0
            scored = state.scored_model  # the EMA when on: its metrics select best.pt
            if dist.enabled:  # evaluate exactly the weights rank 0 saves (BN statistics differ per rank)
                dist_utils.broadcast_buffers(model)
                if state.ema is not None:
                    dist_utils.broadcast_buffers(scored)
            metrics, conf = task.evaluate(
                scored,
                val_data,
                device,
                dist.rank,
                dist.world_size,
                state.amp,
                desc=f"epoch {epoch + 1}/{cfg.epochs} validation",
            )
            state.epoch, state.step_in_epoch = epoch + 1, 0
            state.epoch_accum = fresh_accum()
            if cfg.time_budget > 0 and whole_epoch and planning_epoch(cfg) <= state.epoch < cfg.epochs:
                keep_to_budget(state, time.perf_counter() - t0)
            row = {"epoch": epoch + 1, "lr": state.epoch_lr, **stats, **metrics}
            value = metrics[task.metric]
            improved = not math.isnan(value) and value > state.best_metric
            if improved:
                state.best_metric, state.best_epoch = value, epoch + 1
            timing = {
                "epoch": epoch + 1,
                "train_seconds": f"{train_time:.2f}",
                "epoch_seconds": f"{time.perf_counter() - t0:.2f}",
                "train_img_per_s": f"{len(train_data) / max(train_time, 1e-9):.2f}",
            }

            state.history["metrics"].append(format_row(row))  # the checkpoint holds its own log rows
            state.history["timing"].append(dict(timing))

            def after_save(row=row, timing=timing, improved=improved) -> None:
                if improved:  # same bytes as last.pt: a hard link, not a second 1 GB write
                    atomic_link(run_dir / LAST, run_dir / BEST)
                log.append(row, timing)

            # checkpoint first, then the log: a SIGKILL in between leaves the files a row short, which the
            # resumed run writes back from the checkpoint's history; never a row without its checkpoint. The
            # write runs in a background thread (BackgroundSaver) while the next epoch trains.
            state.save(LAST, metrics, then=after_save)  # every rank: RNG states are gathered
            if dist.is_main:
                for hook in hooks:
                    hook(epoch + 1, scored, row, conf)
                shown = f"{task.metric} {value:.4f}"
                print(
                    f"epoch {epoch + 1}/{cfg.epochs}: train_loss {stats['train_loss']:.4f} "
                    f"train_acc {stats['train_acc']:.4f} val_loss {metrics['val_loss']:.4f} {shown} "
                    f"({time.perf_counter() - t0:.1f}s)",
                    flush=True,
                )
        with finishing_writes(state):
            state.saver.wait()  # the last checkpoint and its log row are on disk
        summary = {
            "run_dir": str(run_dir),
            "best_epoch": state.best_epoch,
            task.metric: state.best_metric,
            "epochs": state.epoch,
        }
        if dist.is_main:
            print(
                f"done: best {task.metric} {state.best_metric:.6f} at epoch {state.best_epoch}; run folder {run_dir}",
                flush=True,
            )
    finally:
        with contextlib.suppress(Exception), finishing_writes(state):  # an error already propagating wins
            state.saver.wait()  # (the normal path waited above)
        restore_signal_handlers(previous)
        for hook in hooks:
            close = getattr(hook, "close", None)
            if close:
                close()
    return summary
