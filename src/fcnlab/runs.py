"""The run folder as one contract: its file names, the ``metrics.csv`` columns, and writing/reading its files.

A run folder is what ``fcnlab classify|segment train --out RUN`` writes::

    config.yaml     the resolved TrainConfig                 model.txt   print(model)
    env.json        hardware and library versions            last.pt     the newest checkpoint
    metrics.csv     one row per epoch (METRIC_COLUMNS)       best.pt     hard link to the best epoch's last.pt
    timing.csv      wall times per epoch                     snapshots/  P2 validation masks per epoch
    eval/NAME/      one folder per evaluation (``eval``: eval.json with its provenance, confusion_matrix.png ...),
                    NAME after its data and options: validation, val10_tta-d4 (:func:`evaluation_dir`)
    train.log       the console output of training (every resume appended)

Training (:mod:`fcnlab.training`), evaluation commands and the report (:mod:`fcnlab.report`) use these names
and functions, so the format is defined once.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import re
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from fcnlab.errors import ConfigError, DataError, OutputError
from fcnlab.runtime.files import atomic_write_text, make_folder
from fcnlab.runtime.lock import LOCK_NAME, RunLock

CONFIG = "config.yaml"
METRICS = "metrics.csv"
TIMING = "timing.csv"
ENV = "env.json"
MODEL_TXT = "model.txt"
LAST = "last.pt"
BEST = "best.pt"
SNAPSHOTS = "snapshots"
EVAL_DIR = "eval"
EVAL_JSON = "eval.json"
PER_TILE = "per_tile.csv"
TRAIN_LOG = "train.log"

#: Columns of ``metrics.csv`` in order; P2 runs add ``iou_0`` ... after them, P1 runs leave ``val_miou`` empty.
METRIC_COLUMNS = ("epoch", "lr", "train_loss", "train_acc", "val_loss", "val_acc", "val_miou")


def options_name(tta: str = "none", scales: Sequence[float] = (1.0,)) -> str:
    """``tta-d4``, ``tta-flip_scales-0.75-1-1.25``, ... (``""`` without test-time augmentation): the part of an
    evaluation's folder name that says its options."""
    parts = [] if tta == "none" else [f"tta-{tta}"]
    if tuple(float(s) for s in scales) != (1.0,):
        parts.append("scales-" + "-".join(f"{float(s):g}" for s in scales))
    return "_".join(parts)


def _safe_name(text: str) -> str:
    """A folder-name-safe form of ``text`` (letters, digits, ``.-``; others become ``-``)."""
    return re.sub(r"[^A-Za-z0-9.-]+", "-", text).strip("-.") or "data"


def evaluation_name(
    data_label: str, tta: str = "none", scales: Sequence[float] = (1.0,), checkpoint: str = BEST
) -> str:
    """``validation``, ``val10_tta-d4``, ``validation_last`` ...: an evaluation's folder name, from what differs
    between evaluations of one run (the data, a checkpoint other than best.pt, the test-time augmentation)."""
    parts = [_safe_name(data_label)]
    if checkpoint != BEST:
        parts.append(_safe_name(Path(checkpoint).stem))
    opts = options_name(tta, scales)
    return "_".join(parts + ([opts] if opts else []))


def same_evaluation(record: dict[str, Any], data: str, tta: str, scales: Sequence[float], checkpoint: str) -> bool:
    """Whether the ``eval.json`` ``record`` is the evaluation of ``data`` (absolute path) with these options: then a
    new run of it replaces it; any other evaluation is never overwritten."""
    ck = record.get("checkpoint")
    ck = ck if isinstance(ck, dict) else {}
    return (
        record.get("data") == data
        and record.get("tta", "none") == tta
        and [float(s) for s in record.get("scales", [1.0])] == [float(s) for s in scales]
        and ck.get("name", BEST) == checkpoint
    )


def evaluation_dir(
    run_dir: str | Path,
    data: str | Path,
    own_val: bool,
    tta: str = "none",
    scales: Sequence[float] = (1.0,),
    checkpoint: str = BEST,
) -> Path:
    """``RUN/eval/NAME``: the folder of the evaluation of ``data`` with these options. ``NAME`` is ``validation``
    for the run's own validation folder (``own_val``), else the data folder's name, then the options
    (:func:`evaluation_name`). A folder of that name holding another evaluation (another folder of the same
    name) is kept: this one gets ``NAME-2``, ``NAME-3`` ...; the same evaluation run again replaces its own."""
    path = Path(data).resolve()
    data = str(path)
    # ``validation`` names the run's own validation data only; another folder of that name is told by its parent
    label = "validation" if own_val else path.name if path.name != "validation" else f"{path.parent.name}-{path.name}"
    base = evaluation_name(label, tta, scales, checkpoint)
    root = Path(run_dir) / EVAL_DIR
    for k in range(1, 1000):
        folder = root / (base if k == 1 else f"{base}-{k}")
        if not folder.exists() or (folder.is_dir() and not any(folder.iterdir())):
            return folder
        record = _try_json(folder / EVAL_JSON)
        if record is not None and same_evaluation(record, data, tta, scales, checkpoint):
            return folder
    raise OutputError(f"{root}: too many evaluations named {base}; delete the ones you do not need")


def _try_json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def list_evaluations(run_dir: str | Path) -> dict[str, Path]:
    """Every evaluation folder of a run, by name: ``RUN/eval/NAME/`` (sorted by name), then those of the older
    layout (``eval`` for ``RUN/eval/eval.json``, ``eval_tta-flip`` ...)."""
    run = Path(run_dir)
    found = {p.parent.name: p.parent for p in sorted((run / EVAL_DIR).glob(f"*/{EVAL_JSON}"))}
    if (run / EVAL_DIR / EVAL_JSON).is_file():
        found.setdefault(EVAL_DIR, run / EVAL_DIR)
    for p in sorted(run.glob(f"{EVAL_DIR}_*/{EVAL_JSON}")):
        found.setdefault(p.parent.name, p.parent)
    return found


def default_evaluation(run_dir: str | Path) -> Path | None:
    """The evaluation a run is shown by: best.pt on its own validation folder without test-time augmentation
    (``RUN/eval/validation``), else the older layout's ``RUN/eval``; None when neither was run."""
    found = list_evaluations(run_dir)
    for name in ("validation", EVAL_DIR):
        if name in found:
            return found[name]
    return None


def write_eval(out_dir: str | Path, payload: dict[str, Any]) -> Path:
    """Write ``out_dir/eval.json`` atomically (its record: :mod:`fcnlab.evaluate.record`); return its path."""
    path = Path(out_dir) / EVAL_JSON
    atomic_write_text(path, json.dumps(payload, indent=1) + "\n")
    return path


def read_eval(run_dir: str | Path) -> dict[str, Any]:
    """The ``eval.json`` of a run's default evaluation (:func:`default_evaluation`) as a dict; a missing or
    unreadable file is a DataError naming it."""
    folder = default_evaluation(run_dir)
    path = (folder if folder is not None else Path(run_dir) / EVAL_DIR / "validation") / EVAL_JSON
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise DataError(f"{path}: cannot read the evaluation results ({e}); run 'fcnlab ... eval' again") from None
    if not isinstance(data, dict):
        raise DataError(f"{path}: expected a JSON object at the top level")
    return data


@contextlib.contextmanager
def eval_writes(out_dir: Path, given: bool) -> Iterator[None]:
    """Writing ``eval``'s files (after its results are printed): a read-only or full default folder beside the
    checkpoint gets one line that suggests ``--out``; with ``--out`` given, the usual line."""
    try:
        yield
    except OutputError as e:
        if given or e.path is None:
            raise
        raise OutputError(
            f"{e.path}: cannot write ({e.happened}); the results are printed above: pass --out FOLDER "
            f"to write the eval files elsewhere"
        ) from None


def record_command(
    run_dir: str | Path, entry: dict[str, Any], base: dict[str, Any] | None = None, top: dict[str, Any] | None = None
) -> None:
    """Append ``entry`` (a command that wrote to the run: what, command line, time ...) to ``commands`` in
    ``RUN/env.json``, which keeps every one (the first training, each resume, each evaluation into the run).

    ``base`` starts a new env.json (a new run); without it a run folder with no env.json is left alone (a
    checkpoint outside a run). ``top`` updates top-level keys (e.g. the data training read last time).
    """
    path = Path(run_dir) / ENV
    env = dict(base) if base is not None else _try_json(path)
    if env is None:
        return
    commands = env.get("commands")
    if not isinstance(commands, list):  # an env.json of an older fcnlab: its one command comes first
        commands = [{"what": "train", "command": env["command"]}] if base is None and env.get("command") else []
    env["commands"] = [*commands, entry]
    env.update(top or {})
    atomic_write_text(path, json.dumps(env, indent=2) + "\n")


def format_row(row: dict[str, Any]) -> dict[str, Any]:
    """A metrics row as ``metrics.csv`` stores it (floats with 6 decimals)."""
    return {k: (f"{v:.6f}" if isinstance(v, float) else v) for k, v in row.items()}


class MetricsLog:
    """``metrics.csv`` (deterministic numbers only) and ``timing.csv`` (wall times), rewritten atomically.

    Each checkpoint also holds every row up to its epoch (``history``), so a resumed run rewrites rows that
    a kill between the checkpoint and the log took away: every epoch is in both files exactly once.
    """

    def __init__(self, run_dir: Path):
        self.path = run_dir / METRICS
        self.timing_path = run_dir / TIMING
        self.rows: list[dict[str, Any]] = self._read(self.path)
        self.timing: list[dict[str, Any]] = self._read(self.timing_path)

    @staticmethod
    def _read(path: Path) -> list[dict[str, Any]]:
        if not path.is_file():
            return []
        with open(path, newline="") as f:
            return list(csv.DictReader(f))

    @staticmethod
    def _write(path: Path, columns: tuple[str, ...] | list[str], rows: list[dict[str, Any]]) -> None:
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=list(columns), extrasaction="ignore", lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        atomic_write_text(path, buf.getvalue())

    def truncate(self, epochs_done: int) -> None:
        """Drop rows beyond the checkpoint being resumed (they were written after it)."""
        self.rows = [r for r in self.rows if int(r["epoch"]) <= epochs_done]
        self.timing = [r for r in self.timing if int(r["epoch"]) <= epochs_done]

    def restore(self, history: dict[str, list[dict[str, Any]]] | None, epochs_done: int) -> None:
        """Make both files hold exactly the rows of the resumed checkpoint's ``history`` (epochs 1..done).

        Rows the files lack (a SIGKILL after the checkpoint, before its row) are written back, rows after
        the checkpoint dropped. A checkpoint without history (older versions) only truncates.
        """
        self.truncate(epochs_done)
        if not history:
            return
        rows = [dict(r) for r in history.get("metrics", []) if int(r["epoch"]) <= epochs_done]
        timing = [dict(r) for r in history.get("timing", []) if int(r["epoch"]) <= epochs_done]
        if len(rows) != epochs_done:  # a history that does not cover the run: keep what the files say
            return
        if rows != self.rows:
            self.rows = rows
            self._write(self.path, self._columns(rows), rows)
        if timing and timing != self.timing:
            self.timing = timing
            self._write(self.timing_path, list(timing[0]), timing)

    @staticmethod
    def _columns(rows: list[dict[str, Any]]) -> list[str]:
        return list(METRIC_COLUMNS) + sorted(k for k in (rows[0] if rows else {}) if k.startswith("iou_"))

    def append(self, row: dict[str, Any], timing: dict[str, Any]) -> None:
        """Add one epoch's row and its wall times; both files are rewritten atomically."""
        fmt = format_row(row)
        self.rows.append(fmt)
        self.timing.append(timing)
        self._write(self.path, self._columns([fmt]), self.rows)
        self._write(self.timing_path, list(timing), self.timing)


def prepare_run_dir(out: str | Path, resume: bool, resume_from: str = LAST) -> Path:
    """Create the run folder; refuse to overwrite an existing run unless resuming it (from ``resume_from``)."""
    run_dir = Path(out)
    if resume:
        if not (run_dir / resume_from).is_file():
            raise ConfigError(f"--resume {run_dir}: no {resume_from} in that folder to resume from")
        return run_dir
    # a folder holding only the console log of attempts that stopped before writing anything is reused
    if run_dir.is_dir() and any(p.name not in (LOCK_NAME, TRAIN_LOG) for p in run_dir.iterdir()):
        if (run_dir / CONFIG).exists() and not (run_dir / LAST).exists():
            raise ConfigError(
                f"--out {run_dir}: holds a run that stopped before its first checkpoint; delete "
                f"that folder or choose a new --out"
            )
        what = "a run" if (run_dir / CONFIG).exists() else "other files"
        raise ConfigError(
            f"--out {run_dir}: folder already holds {what}; pass --resume {run_dir} to continue "
            f"it, or choose a new --out"
        )
    return make_folder(run_dir)


def claim_run_dir(out: str | Path, resume: bool, resume_from: str = LAST) -> RunLock:
    """Take the run folder for this process (:class:`~fcnlab.runtime.lock.RunLock`, released on any exit).

    A folder that a live process trains into is refused with that process's PID before anything else is
    said about it; a new run's folder is created (or checked empty) first, so no lock file is left in a
    folder that is refused for holding other files.
    """
    run_dir = Path(out)
    lock = RunLock(run_dir, "resume" if resume else "train into")
    if (run_dir / LOCK_NAME).is_file():
        lock.acquire()  # raises RunLocked naming the live holder; a stale file is simply taken over
    try:
        prepare_run_dir(run_dir, resume, resume_from)
        return lock.acquire()
    except BaseException:
        lock.release()
        raise
