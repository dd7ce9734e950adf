"""Read a training run folder into a :class:`RunInfo`: the numbers and files a report or comparison shows.

A run folder is what ``fcnlab classify|segment train --out RUN`` writes: ``config.yaml``, ``metrics.csv``,
``timing.csv``, ``env.json``, ``model.txt``, checkpoints, ``snapshots/`` (P2) and, once ``eval`` was run,
one folder per evaluation (``eval/NAME/eval.json`` and its ``confusion_matrix.png``). The validation
numbers come from the evaluation shown (:func:`fcnlab.report.measured.choose`: the one on the run's own
validation data unless ``--eval`` names another), else from the best epoch's row of ``metrics.csv``;
:attr:`RunInfo.measured` says which, on what data, with which options, and whether it is stale. Only
``config.yaml`` or ``metrics.csv`` is required; every other file is optional and its absence is noted, never
an error. A file that exists but cannot be parsed raises one :class:`~fcnlab.errors.DataError` naming it
(another evaluation than the one shown: a note).
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from fcnlab.data.mask_codec import CLASS_NAMES, SCORED_CLASSES
from fcnlab.errors import DataError
from fcnlab.evaluate.record import npz_record, older_than_checkpoint, staleness
from fcnlab.report.measured import Measured, check_wanted, choose, from_metrics, from_record
from fcnlab.runs import CONFIG, EVAL_JSON, METRICS, list_evaluations
from fcnlab.tasks import TASKS, task_info


@dataclass
class RunInfo:
    """What a report shows of one run folder (see the module docstring for where each value comes from)."""

    path: Path
    name: str
    task: str
    config: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, np.ndarray] | None = None
    best_epoch: int | None = None
    val_acc: float = math.nan
    miou: float = math.nan
    per_class_iou: list[float] | None = None
    per_class_acc: list[float] | None = None
    source: str = ""
    timing: list[dict[str, float]] = field(default_factory=list)
    env: dict[str, Any] = field(default_factory=dict)
    model_txt: str | None = None
    tsne: Path | None = None
    confusion: Path | None = None
    snapshots: dict[int, Path] = field(default_factory=dict)
    all_epochs: Path | None = None
    checkpoint: Path | None = None
    snapshot_names: list[str] = field(default_factory=list)  # file names of the snapshot tiles, when recorded
    notes: list[str] = field(default_factory=list)
    inputs: list[Path] = field(default_factory=list)
    measured: Measured | None = None  # what the numbers shown were measured on
    eval_name: str | None = None  # the evaluation shown (None: metrics.csv)
    evaluations: list[tuple[str, Measured, float]] = field(default_factory=list)  # every one: name, what, value
    tsne_stale: str = ""  # why the t-SNE figure is not about the current best.pt

    @property
    def model(self) -> str:
        """Model name from the config ("?" when unknown)."""
        return str(self.config.get("model", "?"))

    @property
    def epochs_done(self) -> int:
        """Number of epochs recorded in ``metrics.csv``."""
        return 0 if self.metrics is None else len(self.metrics["epoch"])

    @property
    def value(self) -> float:
        """The run's headline validation number: mean IoU (tasks scored by IoU, P2) or accuracy (P1)."""
        return self.miou if task_info(self.task).iou else self.val_acc


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except OSError as e:
        raise DataError(f"{path}: cannot read ({e.strerror or e})") from None


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(_read_text(path))
    except json.JSONDecodeError as e:
        raise DataError(f"{path}: not valid JSON ({e.msg} at line {e.lineno}); re-create it or delete it") from None
    if not isinstance(data, dict):
        raise DataError(f"{path}: expected a JSON object at the top level")
    return data


def _read_config(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(_read_text(path)) or {}
    except yaml.YAMLError as e:
        raise DataError(f"{path}: not valid YAML ({str(e).splitlines()[0]})") from None
    if not isinstance(data, dict):
        raise DataError(f"{path}: expected a mapping of config keys to values")
    return data


def read_timing(path: Path) -> list[dict[str, float]]:
    """Rows of ``timing.csv`` as floats (last row wins for a repeated epoch); DataError names bad cells."""
    rows: dict[float, dict[str, float]] = {}
    reader = csv.DictReader(_read_text(path).splitlines())
    if not reader.fieldnames or "epoch" not in reader.fieldnames:
        raise DataError(f"{path}: not a timing file (expected a header starting with 'epoch')")
    for line, row in enumerate(reader, start=2):
        values: dict[str, float] = {}
        for key, text in row.items():
            if key is None:
                continue
            try:
                values[key] = float(text) if text not in (None, "") else math.nan
            except ValueError:
                raise DataError(f"{path}: line {line}, column {key!r}: {text!r} is not a number") from None
        rows[values["epoch"]] = values
    return [rows[e] for e in sorted(rows)]


def best_epoch(metrics: dict[str, np.ndarray], task: str) -> int | None:
    """Epoch with the highest validation metric (the first one on ties, as ``best.pt`` keeps); None if none."""
    values = metrics.get(task_info(task).metric)
    if values is None or not np.isfinite(values).any():
        return None
    index = int(np.nanargmax(np.where(np.isfinite(values), values, -np.inf)))
    return int(metrics["epoch"][index])


def _finite(metrics: dict[str, np.ndarray], column: str) -> bool:
    values = metrics.get(column)
    return values is not None and bool(np.isfinite(values).any())


def _task_of(
    run: Path, config: dict[str, Any], eval_data: dict[str, Any] | None, metrics: dict[str, np.ndarray] | None
) -> str:
    task = config.get("task") or (eval_data or {}).get("task")
    if task is None and metrics is not None:
        # every task's rows hold val_acc, so a filled IoU metric is what tells an IoU-scored run apart
        scored = [t for t in TASKS if task_info(t).iou and _finite(metrics, task_info(t).metric)]
        task = scored[0] if scored else next(t for t in TASKS if not task_info(t).iou)
    if task not in TASKS:
        raise DataError(f"{run / 'config.yaml'}: task {task!r} is not one of {', '.join(TASKS)}")
    return str(task)


def _float(value: Any, path: Path, key: str) -> float:
    if value is None:
        return math.nan
    try:
        return float(value)
    except (TypeError, ValueError):
        raise DataError(f"{path}: {key!r} is {value!r}, not a number; re-run 'fcnlab ... eval'") from None


def _from_eval(info: RunInfo, path: Path, data: dict[str, Any]) -> None:
    """Fill the validation numbers from ``eval/eval.json``."""
    if data.get("task", info.task) != info.task:
        raise DataError(f"{path}: holds a {data.get('task')} evaluation but the run is a {info.task} run")
    if not task_info(info.task).iou:
        if "val_acc" not in data:
            raise DataError(f"{path}: no 'val_acc' key; re-run 'fcnlab {info.task} eval --ckpt {info.path}'")
        info.val_acc = _float(data["val_acc"], path, "val_acc")
        accs = data.get("per_class_acc")
        if accs is not None:
            if not isinstance(accs, list):
                raise DataError(
                    f"{path}: 'per_class_acc' must be a list of numbers; re-run 'fcnlab {info.task} "
                    f"eval --ckpt {info.path}'"
                )
            info.per_class_acc = [_float(v, path, "per_class_acc") for v in accs]
        return
    ious = data.get("per_class_iou")
    if not isinstance(ious, list) or len(ious) < SCORED_CLASSES:
        raise DataError(
            f"{path}: 'per_class_iou' must list the IoU of classes 0-{SCORED_CLASSES - 1}; "
            f"re-run 'fcnlab {info.task} eval --ckpt {info.path}'"
        )
    info.per_class_iou = [_float(v, path, "per_class_iou") for v in ious[:SCORED_CLASSES]]
    info.miou = _float(data.get("mean_iou"), path, "mean_iou")
    if data.get("val_acc") is not None:
        info.val_acc = _float(data["val_acc"], path, "val_acc")
    elif data.get("confusion_matrix") is not None:  # pixel accuracy, as training's val_acc
        try:
            mat = np.asarray(data["confusion_matrix"], dtype=np.float64)
        except (TypeError, ValueError):
            raise DataError(f"{path}: 'confusion_matrix' is not a matrix of numbers") from None
        if mat.ndim == 2 and mat.shape[0] == mat.shape[1] and mat.sum() > 0:
            info.val_acc = float(np.trace(mat) / mat.sum())


def _from_metrics(info: RunInfo) -> None:
    """Fill the validation numbers from the best epoch's row of ``metrics.csv``."""
    assert info.metrics is not None
    if info.best_epoch is None:
        info.notes.append("no finite validation metric in metrics.csv yet")
        return
    row = int(np.nonzero(info.metrics["epoch"] == info.best_epoch)[0][0])
    info.measured = from_metrics(info.best_epoch, info.config, info.env, _unit(info.task))
    info.source = info.measured.describe()
    info.val_acc = float(info.metrics.get("val_acc", np.full(row + 1, math.nan))[row])
    if task_info(info.task).iou:
        columns = [f"iou_{i}" for i in range(SCORED_CLASSES)]
        if all(c in info.metrics for c in columns):
            info.per_class_iou = [float(info.metrics[c][row]) for c in columns]
        info.miou = float(info.metrics["val_miou"][row])


def _check_mean(info: RunInfo) -> None:
    """A class absent from labels and predictions has IoU nan: the course's mean is then nan too, and the
    mean shown is over the present classes (as training's ``val_miou``); a note says so."""
    if not task_info(info.task).iou or info.per_class_iou is None:
        return
    present = [v for v in info.per_class_iou if not math.isnan(v)]
    absent = [f"{i} ({CLASS_NAMES[i]})" for i, v in enumerate(info.per_class_iou) if math.isnan(v)]
    if not absent or not present:
        return
    if math.isnan(info.miou):
        info.miou = sum(present) / len(present)
    info.notes.append(
        f"class {', '.join(absent)} absent from labels and predictions (IoU nan, and so is the "
        f"course's mean); mean IoU shown is over the {len(present)} present classes"
    )


def _unit(task: str) -> str:
    return "tiles" if task_info(task).dense else "images"


def _headline(task: str, data: dict[str, Any]) -> float:
    value = data.get("mean_iou" if task_info(task).iou else "val_acc")
    return float(value) if isinstance(value, (int, float)) else math.nan


def load_run(path: str | Path, name: str | None = None, wanted: str | None = None) -> RunInfo:
    """Read the run folder ``path``; ``name`` defaults to the folder name; ``wanted``: the evaluation to show
    (``--eval``, :func:`fcnlab.report.measured.choose`). DataError if it is not a run."""
    run = Path(path)
    if not run.is_dir():
        what = "does not exist" if not run.exists() else "is not a folder"
        raise DataError(f"{run}: {what}; give a run folder (the --out of 'fcnlab classify|segment train')")
    found = list_evaluations(run)
    shown, choice_note = choose(found, run, wanted)
    cfg_path, metrics_path = run / CONFIG, run / METRICS
    eval_path = found[shown] / EVAL_JSON if shown is not None else run / "eval" / EVAL_JSON
    if not cfg_path.is_file() and not metrics_path.is_file():
        raise DataError(
            f"{run}: not an fcnlab run folder (no config.yaml or metrics.csv); give the --out folder "
            f"of 'fcnlab classify|segment train'"
        )
    config = _read_config(cfg_path) if cfg_path.is_file() else {}
    eval_data = _read_json(eval_path) if shown is not None else None
    metrics = None
    if metrics_path.is_file():
        from fcnlab.report.viz import read_metrics_csv

        metrics = read_metrics_csv(metrics_path)
    info = RunInfo(
        path=run,
        name=name or run.resolve().name,
        task=_task_of(run, config, eval_data, metrics),
        config=config,
        metrics=metrics,
    )
    info.inputs = [p for p in (cfg_path, metrics_path, eval_path) if p.is_file()]
    if choice_note:
        info.notes.append(choice_note)
    if metrics is not None:
        info.best_epoch = best_epoch(metrics, info.task)
    else:
        info.notes.append("no metrics.csv: no epoch has finished yet")
    env = run / "env.json"
    if env.is_file():
        info.env = _read_json(env)
    for eval_name, folder in found.items():
        try:
            data = eval_data if eval_name == shown and eval_data is not None else _read_json(folder / EVAL_JSON)
        except DataError as e:
            info.notes.append(str(e))
            continue
        measured = from_record(eval_name, folder, data, run, info.best_epoch, _unit(info.task))
        info.evaluations.append((eval_name, measured, _headline(info.task, data)))
        info.inputs.append(folder / EVAL_JSON)
        if eval_name == shown:
            info.eval_name, info.measured = eval_name, measured
    if eval_data is not None:
        _from_eval(info, eval_path, eval_data)
        info.source = info.measured.describe() if info.measured else ""
        if info.measured and info.measured.stale:
            info.notes.append(
                f"the evaluation shown ({info.eval_name}) is stale: {info.measured.stale}; re-run "
                f"it, or write the report with --refresh"
            )
    elif metrics is not None:
        _from_metrics(info)
    _check_mean(info)
    _read_extras(info, found[shown] if shown is not None else None)
    return info


def _read_extras(info: RunInfo, eval_folder: Path | None) -> None:
    """Timing, hardware, architecture and figure files (all optional); the confusion matrix of the evaluation
    shown (``eval_folder``)."""
    run = info.path
    timing, env, model = run / "timing.csv", run / "env.json", run / "model.txt"
    if timing.is_file():
        info.timing = read_timing(timing)
    if model.is_file():
        info.model_txt = _read_text(model)
    info.inputs += [p for p in (timing, env, model) if p.is_file()]
    # without an evaluation shown, the older layout's figure (its eval.json was lost or never written)
    confusion = (eval_folder if eval_folder is not None else run / "eval") / "confusion_matrix.png"
    for attr, file in (
        ("tsne", run / "tsne.png"),
        ("confusion", confusion),
        ("all_epochs", run / "snapshots" / "all_epochs.png"),
    ):
        if file is not None and file.is_file():
            setattr(info, attr, file)
            info.inputs.append(file)
    if info.tsne is not None:
        npz = info.tsne.with_suffix(".npz")
        record = npz_record(npz) if npz.is_file() else None
        info.tsne_stale = (
            staleness(record, run, info.best_epoch) if record is not None else older_than_checkpoint(info.tsne, run)
        )
    for name in ("best.pt", "last.pt"):
        if (run / name).is_file():
            info.checkpoint = run / name
            info.inputs.append(run / name)
            break
    snapshot_npz = sorted((run / "snapshots").glob("epoch_*.npz"))
    if snapshot_npz:
        try:
            with np.load(snapshot_npz[-1]) as z:
                info.snapshot_names = [str(n) for n in z["names"]] if "names" in z else []
        except (OSError, ValueError):
            info.notes.append(f"{snapshot_npz[-1]}: unreadable; the snapshot tiles' names are unknown")
    for file in sorted((run / "snapshots").glob("epoch_*.png")):
        try:
            info.snapshots[int(file.stem.split("_", 1)[1])] = file
            info.inputs.append(file)
        except ValueError:
            continue
    later = sorted(e for e in info.snapshots if e > info.epochs_done) if info.metrics is not None else []
    if later:
        info.notes.append(
            f"mask snapshots of epoch {', '.join(map(str, later))} are stale: metrics.csv ends at "
            f"epoch {info.epochs_done} (the run was resumed from an earlier checkpoint)"
        )


def unique_names(paths: Sequence[Path]) -> list[str]:
    """Short display names: the folder name, or ``parent/name`` (then ``#k``) where two runs share it."""
    resolved = [p.resolve() for p in paths]
    base = [p.name for p in resolved]
    names = [f"{p.parent.name}/{p.name}" if base.count(p.name) > 1 else p.name for p in resolved]
    seen: dict[str, int] = {}
    for i, n in enumerate(names):
        seen[n] = seen.get(n, 0) + 1
        if seen[n] > 1:
            names[i] = f"{n}#{seen[n]}"
    return names


def load_runs(paths: Sequence[str | Path], wanted: str | None = None) -> list[RunInfo]:
    """Load several run folders with distinct display names (see :func:`unique_names`), each showing the
    evaluation ``wanted`` (``--eval``) where it has one; a ``wanted`` none of them has is a ConfigError."""
    if not paths:
        raise DataError("no run folders given")
    folders = [Path(p) for p in paths]
    check_wanted(wanted, [list_evaluations(p) for p in folders if Path(p).is_dir()])
    return [load_run(p, n, wanted) for p, n in zip(folders, unique_names(folders), strict=True)]
