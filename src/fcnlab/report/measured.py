"""What each number of a report or comparison was measured on, and which evaluation of a run is shown.

A run's numbers come from one of its evaluations (``RUN/eval/NAME/eval.json``, or the older ``RUN/eval`` and
``RUN/eval_tta-*`` folders) or from the best epoch of ``metrics.csv``. :class:`Measured` says which, on what
data (absolute path, count, subset), with which test-time augmentation, from which checkpoint, and whether
that checkpoint is still the run's current one. Two numbers are shown side by side, with a delta, only when
their :meth:`Measured.key` is the same: same data, same count, same options.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fcnlab.errors import ConfigError
from fcnlab.evaluate.record import older_than_checkpoint, staleness
from fcnlab.runs import EVAL_DIR, EVAL_JSON, default_evaluation, options_name

#: ``--eval`` value that shows the best epoch of metrics.csv even where an evaluation exists.
METRICS_NAME = "metrics.csv"


@dataclass
class Measured:
    """Where a run's numbers come from and what they were measured on."""

    source: str  # "eval/validation", "eval (older layout)" or "metrics.csv, best epoch 3"
    data: str  # the absolute path where known, else the path as recorded
    count: int | None = None  # images or tiles scored (None: not recorded)
    unit: str = "images"
    subset: str = ""  # "--val-limit 500" when the number covers part of the folder
    tta: str = "none"
    scales: tuple[float, ...] = (1.0,)
    checkpoint: str = ""  # "best.pt, epoch 2, raw weights"
    stale: str = ""  # why the number is not about the current best.pt ("" when it is, or unknown)

    def key(self) -> tuple[Any, ...]:
        """What must be equal for two numbers to be compared: the data, its count and the options."""
        return self.data, self.count, self.subset, self.tta, self.scales

    @property
    def options(self) -> str:
        """``TTA none`` or ``TTA d4, scales 0.75-1``."""
        scales = options_name("none", self.scales).replace("scales-", "scales ")
        return f"TTA {self.tta}" + (f", {scales}" if scales else "")

    def describe(self) -> str:
        """One line: source, checkpoint, data and count, options, and a staleness flag."""
        ck = f" ({self.checkpoint})" if self.checkpoint else ""
        detail = ", ".join(t for t in (f"{self.count} {self.unit}" if self.count is not None else "", self.subset) if t)
        data = "data not recorded" if self.data == "?" else self.data
        stale = f"; STALE: {self.stale}" if self.stale else ""
        return f"{self.source}{ck} on {data}" + (f" ({detail})" if detail else "") + f", {self.options}{stale}"


def _count(record: dict[str, Any]) -> int | None:
    value = record.get("count", record.get("images", record.get("n_masks")))
    return int(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def checkpoint_text(ck: Any) -> str:
    """``best.pt, epoch 2, EMA weights`` from an evaluation's checkpoint record (``""`` when not recorded)."""
    if not isinstance(ck, dict):
        return ""
    epoch = f", epoch {ck['epoch']}" if ck.get("epoch") is not None else ""
    weights = {"ema": ", EMA weights", "raw": ", raw weights"}.get(str(ck.get("weights")), "")
    return f"{ck.get('name', '?')}{epoch}{weights}"


def from_record(
    name: str, folder: Path, record: dict[str, Any], run_dir: Path, best_epoch: int | None, unit: str
) -> Measured:
    """The :class:`Measured` of the evaluation ``record`` in ``folder`` (named ``name``) of run ``run_dir``."""
    legacy = folder.parent == run_dir  # RUN/eval or RUN/eval_tta-*: no provenance
    source = f"{folder.relative_to(run_dir).as_posix()}" + (" (older layout)" if legacy else "")
    scales = tuple(float(s) for s in record.get("scales") or [1.0])
    stale = staleness(record, run_dir, best_epoch)
    if not stale and not isinstance(record.get("checkpoint"), dict):
        stale = older_than_checkpoint(folder / EVAL_JSON, run_dir)
    return Measured(
        source,
        str(record.get("data") or "?"),
        _count(record),
        str(record.get("unit") or unit),
        "subset" if record.get("subset") else "",
        str(record.get("tta", "none")),
        scales,
        checkpoint_text(record.get("checkpoint")),
        stale,
    )


def from_metrics(best_epoch: int, config: dict[str, Any], env: dict[str, Any], unit: str) -> Measured:
    """The :class:`Measured` of the best epoch's row of ``metrics.csv``: training's validation data (as
    env.json recorded it, else config.yaml's ``val``), all of it or ``--val-limit`` of it, no TTA."""
    val = (env.get("data") or {}).get("val") if isinstance(env.get("data"), dict) else None
    if isinstance(val, dict) and val.get("path"):
        data, count = str(val["path"]), val.get("count")
    else:
        given = config.get("val")
        data, count = (str(Path(str(given)).resolve()) if given else "?"), None
    limit = config.get("val_limit")
    subset = f"--val-limit {limit}" if limit else ""
    return Measured(
        f"metrics.csv, best epoch {best_epoch}", data, count if isinstance(count, int) else None, unit, subset
    )


def choose(found: dict[str, Path], run_dir: Path, wanted: str | None) -> tuple[str | None, str]:
    """The evaluation to show (a name of ``found``, or None for metrics.csv) and a note when ``wanted`` (an
    ``--eval`` value) does not name one of this run's evaluations.

    Without ``wanted``: the evaluation on the run's own validation data without test-time augmentation
    (``validation``), else another one on its own validation data, else the older layout's ``eval``.
    ``wanted`` is a folder name (``val10_tta-d4``), or the options of an evaluation on the run's own validation
    data (``tta-flip`` for ``validation_tta-flip``), or ``metrics.csv``.
    """
    if wanted == METRICS_NAME:
        return None, ""
    if wanted:
        for name in (wanted, f"validation_{wanted}", f"{EVAL_DIR}_{wanted}"):
            if name in found:
                return name, ""
    default = default_evaluation(run_dir)
    if default is None:
        own = [n for n in found if n.startswith("validation")]
        legacy = [n for n in found if n.startswith(f"{EVAL_DIR}_")]
        default = found[(own or legacy)[0]] if own or legacy else None
    chosen = None if default is None else next(n for n, f in found.items() if f == default)
    if wanted:
        shown = chosen or METRICS_NAME
        have = ", ".join(found) or "none"
        return chosen, f"no evaluation named {wanted!r} (evaluations: {have}); showing {shown}"
    return chosen, ""


def check_wanted(wanted: str | None, runs_found: list[dict[str, Path]]) -> None:
    """Refuse an ``--eval`` value that names an evaluation of none of the runs, with one line listing theirs."""
    if not wanted or wanted == METRICS_NAME:
        return
    candidates = (wanted, f"validation_{wanted}", f"{EVAL_DIR}_{wanted}")
    if any(n in found for found in runs_found for n in candidates):
        return
    names = sorted({n for found in runs_found for n in found})
    raise ConfigError(
        f"option --eval {wanted}: no run has that evaluation; the runs have: "
        f"{', '.join(names) or 'none'} (or --eval {METRICS_NAME})"
    )
