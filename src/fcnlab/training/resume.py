"""What ``--resume RUN [--from last|best]`` continues from, and whether the command may continue it.

A checkpoint is resumed only by the task that wrote it and with the shapes its weights were trained for
(model, class count, input size, upsampling); anything else is refused with one line that says what
differs, before a model is built. A damaged ``last.pt`` names the way out: ``--from best``.

``config.yaml`` describes every epoch of the run, the finished ones too, so a resume may change only where
the data is and how the run executes or reports (:data:`RUN_OPTIONS`), and ``--epochs`` to a number larger
than the epochs already trained (an explicit new schedule: the remaining epochs follow it). Other options
are refused in one line unless ``--change-settings`` asks for them: the remaining epochs then use them and
the settings of the trained ones stay in ``config_until_epoch_N.yaml`` (:func:`archive_name`). Fewer epochs
than trained are refused; a finished run resumed with nothing to train is a no-op that says so
(:func:`finished`, :func:`resume_finished`).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fcnlab.checkpoint import load_checkpoint
from fcnlab.errors import ConfigError, DataError
from fcnlab.runs import BEST, LAST, MetricsLog
from fcnlab.runtime.lock import refuse_if_held
from fcnlab.taskinfo import task_info

if TYPE_CHECKING:
    from fcnlab.config import TrainConfig
    from fcnlab.runtime import distributed as dist_utils

#: The config keys a resumed checkpoint must share with the command, and the options that set them.
FIXED = {
    "model": "--model",
    "num_classes": "--num-classes",
    "image_size": "--image-size",
    "input_size": "--input-size",
    "learn_upsampling": "--learn-upsampling",
}
#: What a resume may change besides a larger ``epochs``: data locations, execution and reporting; none of them
#: changes what the finished epochs computed (``seed`` and ``amp`` would: the --limit sample, the numerics).
RUN_OPTIONS = frozenset(
    {
        "data",
        "val",
        "val_csv",
        "cache",
        "device",
        "deterministic",
        "channels_last",
        "compile",
        "compile_mode",
        "resident",
        "workers",
        "eval_batch_size",
        "sync_bn",
        "log_every",
        "tensorboard",
        "snapshot_epochs",
        "snapshot_tiles",
        "snapshot_images",
        "time_budget",  # it sets epochs only within those asked for; the checkpoint's epochs say what it set
    }
)
#: ``--from`` choices and the file each one resumes.
SOURCES = {"last": LAST, "best": BEST}


def _same_file(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def load_resume_checkpoint(run_dir: str | Path, start: str = "last") -> dict[str, Any]:
    """Load ``RUN/last.pt`` (``start="best"``: ``RUN/best.pt``); refuse a run another process holds.

    The returned dict carries ``source`` (the file's name, inode and mtime) so that :func:`fcnlab.training.fit`
    can check, once it holds the run's lock, that no other process replaced the file meanwhile.
    """
    run_dir = Path(run_dir)
    if start not in SOURCES:
        raise ConfigError(f"option --from: must be one of {', '.join(SOURCES)}, got {start}")
    refuse_if_held(run_dir, "resume")  # before reading a live run's checkpoint at all
    path = run_dir / SOURCES[start]
    if not path.is_file():
        other = f"; it holds {BEST}: add --from best" if start == "last" and (run_dir / BEST).is_file() else ""
        raise ConfigError(f"--resume {run_dir}: no {path.name} in that folder to resume from{other}")
    try:
        ckpt = load_checkpoint(path)
    except DataError as e:
        best = run_dir / BEST
        if start != "last" or not best.is_file() or _same_file(path, best):
            raise
        what = str(e).split("; ")[0]
        raise DataError(
            f"{what}; resume from the best epoch's checkpoint instead: --resume {run_dir} --from best "
            f"(the epochs after it are trained again)"
        ) from None
    st = path.stat()
    ckpt["source"] = {"name": path.name, "inode": st.st_ino, "mtime_ns": st.st_mtime_ns}
    return ckpt


def check_resume(ckpt: dict[str, Any], run_dir: str | Path, task: str | None, overrides: dict[str, Any]) -> None:
    """Refuse to continue ``ckpt`` as another task or with other shapes; one line says what differs."""
    saved_task = ckpt.get("task")
    if task is not None and saved_task != task:
        raise ConfigError(
            f"--resume {run_dir}: is a {saved_task} run ({ckpt.get('model_name')}), not a {task} "
            f"run; resume it with 'fcnlab {saved_task} train --resume {run_dir}'"
        )
    saved = ckpt.get("config", {})
    differs = [
        f"{option} {overrides[key]} (the run has {saved.get(key)})"
        for key, option in FIXED.items()
        if key in overrides and overrides[key] != saved.get(key)
    ]
    if differs:
        raise ConfigError(
            f"--resume {run_dir}: the checkpoint was trained with other shapes: {', '.join(differs)}; "
            f"drop those options to resume it, or start a new run with --out"
        )


def check_unchanged(ckpt: dict[str, Any], run_dir: Path) -> None:
    """After taking the run's lock: the resumed file must still be the one that was read (no other writer)."""
    source = ckpt.get("source")
    if not source:
        return
    try:
        st = (run_dir / source["name"]).stat()
        same = (st.st_ino, st.st_mtime_ns) == (source["inode"], source["mtime_ns"])
    except OSError:
        same = False
    if not same:
        raise ConfigError(
            f"{run_dir / source['name']}: another process wrote it while this one started; run the "
            f"command again to resume from the new checkpoint"
        )


def _option(key: str) -> str:
    return "--" + key.replace("_", "-")


def settings_changed(saved: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    """The keys of ``new`` that differ from ``saved`` (both resolved config dicts) and are settings of the
    training itself, neither :data:`RUN_OPTIONS` nor ``epochs``."""
    return {k: v for k, v in new.items() if k not in RUN_OPTIONS and k != "epochs" and v != saved.get(k)}


def check_changes(
    ckpt: dict[str, Any], run_dir: str | Path, saved: dict[str, Any], new: dict[str, Any], change_settings: bool = False
) -> dict[str, Any]:
    """Refuse a resumed config ``new`` (``saved``: the checkpoint's, both resolved) that would cut the run below
    the epochs trained, or rewrite the settings of those epochs (anything outside :data:`RUN_OPTIONS`) without
    ``change_settings``; one line says which and what to do. With ``change_settings`` some epoch must be left
    to train with the new settings. Returns the settings that change."""
    done, step = int(ckpt.get("epoch", 0)), int(ckpt.get("step_in_epoch", 0))
    trained = f"{done} epoch{'' if done == 1 else 's'}" + (f" and {step} steps of epoch {done + 1}" if step else "")
    epochs = new["epochs"]
    if epochs != saved["epochs"] and epochs <= done:
        raise ConfigError(
            f"--resume {run_dir} --epochs {epochs}: the run has already trained {trained}; give "
            f"--epochs {done + 1} or more to train further, or start a new run with --out"
        )
    changed = settings_changed(saved, new)
    if not changed:
        return changed
    shown = ", ".join(f"{_option(k)} {v} (the run has {saved.get(k)})" for k, v in changed.items())
    if not change_settings:
        raise ConfigError(
            f"--resume {run_dir}: {shown} would change the settings of the {trained} already "
            f"trained (config.yaml describes them); resume without it, add --change-settings to "
            f"train the remaining epochs with it, or start a new run with --out"
        )
    if finished(ckpt, epochs):
        raise ConfigError(
            f"--resume {run_dir} --change-settings: the run has trained all its {trained}, so no "
            f"epoch is left to train with {shown}; add --epochs {done + 1} or more"
        )
    return changed


def archive_name(ckpt: dict[str, Any]) -> str:
    """Where ``config.yaml`` is kept when ``--change-settings`` replaces it at the position of ``ckpt``."""
    done, step = int(ckpt.get("epoch", 0)), int(ckpt.get("step_in_epoch", 0))
    return f"config_until_epoch_{done}" + (f"_step_{step}" if step else "") + ".yaml"


def finished(ckpt: dict[str, Any], epochs: int) -> bool:
    """Whether ``ckpt`` ends a run of ``epochs`` epochs: resuming it trains nothing."""
    return int(ckpt.get("epoch", 0)) >= epochs and int(ckpt.get("step_in_epoch", 0)) == 0


def resume_finished(cfg: TrainConfig, run_dir: Path, ckpt: dict[str, Any], dist: dist_utils.DistInfo) -> dict[str, Any]:
    """Resuming a finished run: nothing to train, and config.yaml is left alone; only log rows a kill took
    away after the last checkpoint are written back, so the folder matches ``last.pt``."""
    metric = task_info(cfg.task).metric
    if dist.is_main:
        MetricsLog(run_dir).restore(ckpt.get("history"), ckpt["epoch"])
        print(
            f"{run_dir}: training is already complete ({ckpt['epoch']} epochs); nothing was trained or "
            f"changed; pass --epochs N (more than {ckpt['epoch']}) to train longer",
            flush=True,
        )
    return {
        "run_dir": str(run_dir),
        "best_epoch": ckpt["best_epoch"],
        metric: ckpt["best_metric"],
        "epochs": ckpt["epoch"],
    }
