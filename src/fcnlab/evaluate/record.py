"""What an evaluation records about itself, and whether it is still about the run's current checkpoint.

Every ``eval.json`` (and a t-SNE's ``.npz``) holds the checkpoint it scored (path, epoch, which weights: EMA
or raw, size and modification time), the data (absolute path, number of images or tiles, whether a subset,
whether it is the run's own validation folder), the test-time augmentation and scales, the fcnlab version,
the command and the time. :func:`staleness` compares that record with the run folder as it is now, so a
report can flag a number made from an older ``best.pt``.
"""

from __future__ import annotations

import datetime as _dt
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from fcnlab.runs import BEST
from fcnlab.runtime.provenance import now_text


def checkpoint_record(path: str | Path, ckpt: dict[str, Any]) -> dict[str, Any]:
    """The checkpoint an evaluation scored: path, file name, epoch, best epoch, weights (``ema`` or ``raw``),
    size and modification time (what :func:`staleness` compares)."""
    from fcnlab.checkpoint import scores_ema

    path = Path(path).resolve()
    record: dict[str, Any] = {
        "path": str(path),
        "name": path.name,
        "epoch": ckpt.get("epoch"),
        "best_epoch": ckpt.get("best_epoch"),
        "weights": "ema" if scores_ema(ckpt) else "raw",
    }
    try:
        st = path.stat()
        record.update(
            size=st.st_size,
            mtime_ns=st.st_mtime_ns,
            mtime=_dt.datetime.fromtimestamp(st.st_mtime, _dt.timezone.utc).replace(microsecond=0).isoformat(),
        )
    except OSError:
        pass
    return record


def is_own_validation(data: str | Path, config: dict[str, Any]) -> bool:
    """Whether ``data`` is the folder the run validated on (its config's ``val``)."""
    val = config.get("val")
    if not val:
        return False
    try:
        return Path(data).resolve() == Path(str(val)).resolve()
    except OSError:
        return False


def data_record(data: str | Path, count: int, unit: str, own_val: bool, subset: bool = False) -> dict[str, Any]:
    """The data an evaluation was measured on: absolute path, the path as given, count and unit, subset flag."""
    return {
        "data": str(Path(data).resolve()),
        "data_given": str(data),
        "count": int(count),
        "unit": unit,
        "subset": bool(subset),
        "own_validation": bool(own_val),
    }


def evaluation_record(
    task: str,
    ckpt_path: str | Path,
    ckpt: dict[str, Any],
    data: dict[str, Any],
    tta: str,
    scales: Sequence[float],
    numbers: dict[str, Any],
) -> dict[str, Any]:
    """The whole ``eval.json``: task, data (:func:`data_record`), options, checkpoint, provenance, then
    ``numbers``."""
    from fcnlab.runtime.provenance import provenance

    me = provenance()
    return {
        "task": task,
        **data,
        "tta": tta,
        "scales": [float(s) for s in scales],
        "checkpoint": checkpoint_record(ckpt_path, ckpt),
        "fcnlab": me["fcnlab"],
        "git_commit": me["git_commit"],
        "command": me["command"],
        "time": now_text(),
        **numbers,
    }


def staleness(record: dict[str, Any] | None, run_dir: str | Path, best_epoch: int | None) -> str:
    """Why an evaluation (or t-SNE) ``record`` is not about the run's current checkpoint, or ``""``.

    The checkpoint it scored is compared with the file of that name in ``run_dir`` now: unchanged size and
    modification time mean the same weights; otherwise, for ``best.pt``, the epoch it scored must still be the
    best epoch of ``metrics.csv`` (``best_epoch``; a copied run folder keeps its numbers). A record without a
    checkpoint (an older fcnlab) is judged by the files' times by the caller.
    """
    ck = (record or {}).get("checkpoint")
    if not isinstance(ck, dict) or not ck.get("name"):
        return ""
    current = Path(run_dir) / str(ck["name"])
    epoch = f"epoch {ck.get('epoch')}" if ck.get("epoch") is not None else "an unknown epoch"
    if not current.is_file():
        return f"made from {ck['name']} ({epoch}), which is no longer in the run folder"
    st = current.stat()
    if st.st_size == ck.get("size") and st.st_mtime_ns == ck.get("mtime_ns"):
        return ""
    if ck["name"] == BEST and best_epoch is not None and ck.get("epoch") == best_epoch:
        return ""
    now = f" (best epoch now {best_epoch})" if ck["name"] == BEST and best_epoch is not None else ""
    return f"made from an older {ck['name']} ({epoch}){now}"


def older_than_checkpoint(path: Path, run_dir: str | Path) -> str:
    """For files that record no checkpoint: a note when ``path`` is older than the run's ``best.pt``, or ``""``."""
    best = Path(run_dir) / BEST
    try:
        if best.is_file() and os.stat(path).st_mtime < best.stat().st_mtime:
            return f"{path.name} is older than {BEST} and records no checkpoint: it may be from an earlier best epoch"
    except OSError:
        pass
    return ""


def npz_record(path: str | Path) -> dict[str, Any] | None:
    """The ``provenance`` JSON string a t-SNE ``.npz`` stores (None: none recorded, or the file is unreadable)."""
    import json

    import numpy as np

    try:
        with np.load(path, allow_pickle=False) as z:
            if "provenance" not in z:
                return None
            data = json.loads(str(z["provenance"]))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None
