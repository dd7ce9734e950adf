"""The one way into training, whichever front door asks (``fcnlab <task> train`` or :func:`fcnlab.train`):
a new run or a resumed one, with the same checks."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fcnlab.config import TrainConfig
from fcnlab.data.images import real_path
from fcnlab.errors import ConfigError
from fcnlab.training.fit import fit, resume_config


def train_new(cfg: TrainConfig, out: str | Path) -> dict[str, Any]:
    """Train a new run of the resolved ``cfg`` into ``out``; return :func:`~fcnlab.training.fit.fit`'s summary.

    Refuses an ``out`` that is the training or validation folder, so inputs are never overwritten.
    """
    for name in ("data", "val"):
        folder = getattr(cfg, name)
        if folder is not None and real_path(out) == real_path(folder):
            raise ConfigError(
                f"--out {out}: is the --{name} folder; choose another folder so inputs are never overwritten"
            )
    return fit(cfg, out)


def train_resumed(
    run_dir: str | Path,
    overrides: dict[str, Any],
    task: str | None = None,
    start: str = "last",
    change_settings: bool = False,
) -> dict[str, Any]:
    """Continue the run in ``run_dir`` from its ``last.pt`` (or ``best.pt``, ``start="best"``) with the config
    keys in ``overrides`` changed; ``task``, when given, must be the checkpoint's. Options that would change
    the finished epochs' settings are refused unless ``change_settings`` (``--change-settings``)."""
    cfg, ckpt = resume_config(run_dir, overrides, task=task, start=start, change_settings=change_settings)
    return fit(cfg, run_dir, ckpt, config_changed=bool(overrides))
