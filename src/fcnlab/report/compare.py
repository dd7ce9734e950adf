"""Side-by-side comparison of runs: per-class IoU and mean IoU (P2) or accuracy (P1), with deltas.

This is the seed report's comparison section: rows are the classes 0-5 and the mean IoU, columns the runs
(named by folder) and, after each run but the first, its difference from the first run. P1 runs compare
their validation accuracy. Runs of the two tasks cannot be mixed.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from fcnlab.data.mask_codec import CLASS_NAMES, SCORED_CLASSES
from fcnlab.errors import DataError
from fcnlab.report.runs import RunInfo, load_runs
from fcnlab.tasks import task_info


@dataclass
class Comparison:
    """A comparison table: ``rows`` of ``(label, value per run)``; deltas are taken against run 0."""

    task: str
    runs: list[str]
    rows: list[tuple[str, list[float]]]
    sources: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def deltas(self, values: Sequence[float]) -> list[float]:
        """``value - first value`` for runs 1.. (nan where either is nan)."""
        return [v - values[0] for v in values[1:]]

    def table(self, digits: int = 4) -> tuple[list[str], list[list[str]]]:
        """Header and formatted rows: label, first run, then each further run followed by its delta."""
        header = ["class" if task_info(self.task).iou else "metric", self.runs[0]]
        for name in self.runs[1:]:
            header += [name, f"Δ {name}"]
        body = []
        for label, values in self.rows:
            cells = [label, fmt_value(values[0], digits)]
            for value, delta in zip(values[1:], self.deltas(values), strict=True):
                cells += [fmt_value(value, digits), fmt_delta(delta, digits)]
            body.append(cells)
        return header, body

    def to_markdown(self, digits: int = 4) -> str:
        """The table as GitHub Markdown, then where each run's numbers come from and any notes."""
        header, body = self.table(digits)
        n = len(self.runs)
        lines = [f"## Comparison ({task_info(self.task).label}, {n} run{'' if n == 1 else 's'})", ""]
        lines += [_md_row(header), _md_row(["---"] + ["---:"] * (len(header) - 1))]
        lines += [_md_row(row) for row in body]
        lines.append("")
        if len(self.runs) > 1:
            lines += [f"Δ = run - {self.runs[0]}.", ""]
        lines += [f"- {name}: {source}" for name, source in zip(self.runs, self.sources, strict=True)]
        lines += [f"- note: {note}" for note in self.notes]
        return "\n".join(lines) + "\n"


def fmt_value(value: float, digits: int = 4) -> str:
    """A metric value with ``digits`` decimals ("nan" when not a number)."""
    return "nan" if math.isnan(value) else f"{value:.{digits}f}"


def fmt_delta(value: float, digits: int = 4) -> str:
    """A signed difference with ``digits`` decimals ("n/a" when either side is nan)."""
    return "n/a" if math.isnan(value) else f"{value:+.{digits}f}"


def _md_row(cells: Sequence[str]) -> str:
    return "| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |"


def check_same_task(runs: Sequence[RunInfo]) -> str:
    """The task shared by ``runs``; DataError naming the first run of another task."""
    task = runs[0].task
    for run in runs[1:]:
        if run.task != task:
            raise DataError(f"{run.path}: is a {task_info(run.task).label} run but {runs[0].path} is a "
                            f"{task_info(task).label} run; compare runs of one task")
    return task


def compare_infos(runs: Sequence[RunInfo]) -> Comparison:
    """Build the :class:`Comparison` of loaded runs (all of one task)."""
    if not runs:
        raise DataError("no run folders to compare")
    task = check_same_task(runs)
    names = [r.name for r in runs]
    if task_info(task).iou:  # per-class IoU and their mean
        rows = []
        for i in range(SCORED_CLASSES):
            rows.append((f"{i} {CLASS_NAMES[i]}",
                         [r.per_class_iou[i] if r.per_class_iou is not None else math.nan for r in runs]))
        rows.append(("mean IoU", [r.miou for r in runs]))
    else:
        rows = [("val accuracy", [r.val_acc for r in runs])]
    sources = [r.source or "no validation numbers yet" for r in runs]
    notes = [f"{r.name}: {n}" for r in runs for n in r.notes]
    for r in runs:
        if not r.source:
            notes.append(f"{r.name}: nothing to compare yet; train it or run 'fcnlab {r.task} eval --ckpt "
                         f"{r.path}'")
    return Comparison(task, names, rows, sources, notes)


def compare_runs(runs: Sequence[str | Path | RunInfo]) -> Comparison:
    """Compare run folders (paths or loaded :class:`RunInfo`); see the module docstring."""
    infos = [r for r in runs if isinstance(r, RunInfo)]
    if len(infos) != len(runs):
        if infos:
            raise TypeError("pass either run folders or RunInfo objects, not both")
        infos = load_runs([Path(r) for r in runs])  # type: ignore[arg-type]
    return compare_infos(infos)
