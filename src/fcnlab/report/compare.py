"""Side-by-side comparison of runs: per-class IoU and mean IoU (P2) or accuracy (P1), with deltas.

This is the seed report's comparison section: rows are the classes 0-5 and the mean IoU, columns the runs
(named by folder) and, after each run but the first, its difference from the first run. P1 runs compare
their validation accuracy. Runs of the two tasks cannot be mixed. Only numbers measured on the same data
with the same options share a table (:func:`measured_groups`); a note says why the others are apart.
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
    """A comparison table: ``rows`` of ``(label, value per run)``.

    ``groups`` lists the runs (indices) whose numbers were measured on the same data with the same options
    (:meth:`fcnlab.report.measured.Measured.key`); each group is a table of its own, with deltas against its
    first run. Numbers of different groups are never set side by side.
    """

    task: str
    runs: list[str]
    rows: list[tuple[str, list[float]]]
    sources: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    groups: list[list[int]] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.groups:
            self.groups = [list(range(len(self.runs)))]

    def deltas(self, values: Sequence[float]) -> list[float]:
        """``value - first value`` for runs 1.. (nan where either is nan)."""
        return [v - values[0] for v in values[1:]]

    def table(self, digits: int = 4, group: int = 0) -> tuple[list[str], list[list[str]]]:
        """Header and formatted rows of one group: label, its first run, then each further run followed by
        its delta."""
        members = self.groups[group]
        names = [self.runs[i] for i in members]
        header = ["class" if task_info(self.task).iou else "metric", names[0]]
        for name in names[1:]:
            header += [name, f"Δ {name}"]
        body = []
        for label, all_values in self.rows:
            values = [all_values[i] for i in members]
            cells = [label, fmt_value(values[0], digits)]
            for value, delta in zip(values[1:], self.deltas(values), strict=True):
                cells += [fmt_value(value, digits), fmt_delta(delta, digits)]
            body.append(cells)
        return header, body

    def caption(self, group: int) -> str:
        """What the numbers of a group were measured on (its first run's source), and what Δ means."""
        members = self.groups[group]
        first = self.runs[members[0]]
        delta = f"; Δ = run - {first}" if len(members) > 1 else ""
        return f"measured as {first}: {self.sources[members[0]]}{delta}" if self.sources else delta

    def to_markdown(self, digits: int = 4) -> str:
        """The tables as GitHub Markdown (one per group), then where each run's numbers come from and notes."""
        n = len(self.runs)
        lines = [f"## Comparison ({task_info(self.task).label}, {n} run{'' if n == 1 else 's'})", ""]
        for g in range(len(self.groups)):
            header, body = self.table(digits, g)
            lines += [_md_row(header), _md_row(["---"] + ["---:"] * (len(header) - 1))]
            lines += [_md_row(row) for row in body]
            lines.append("")
            if len(self.groups[g]) > 1:
                lines += [f"Δ = run - {self.runs[self.groups[g][0]]}.", ""]
        lines += [f"- {name}: {source}" for name, source in zip(self.runs, self.sources, strict=True)]
        lines += [f"- note: {note}" for note in self.notes]
        return "\n".join(lines) + "\n"


def measured_groups(runs: Sequence[RunInfo]) -> list[list[int]]:
    """Indices of ``runs`` grouped by what their numbers were measured on (order of first appearance); runs
    with no numbers yet form a group each."""
    groups: dict[object, list[int]] = {}
    for i, run in enumerate(runs):
        key = run.measured.key() if run.measured is not None else ("none", i)
        groups.setdefault(key, []).append(i)
    return list(groups.values())


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
            raise DataError(
                f"{run.path}: is a {task_info(run.task).label} run but {runs[0].path} is a "
                f"{task_info(task).label} run; compare runs of one task"
            )
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
            rows.append(
                (
                    f"{i} {CLASS_NAMES[i]}",
                    [r.per_class_iou[i] if r.per_class_iou is not None else math.nan for r in runs],
                )
            )
        rows.append(("mean IoU", [r.miou for r in runs]))
    else:
        rows = [("val accuracy", [r.val_acc for r in runs])]
    sources = [r.source or "no validation numbers yet" for r in runs]
    notes = [f"{r.name}: {n}" for r in runs for n in r.notes]
    groups = measured_groups(runs)
    if len(groups) > 1 and any(r.measured is not None for r in runs):
        split = "; ".join(", ".join(names[i] for i in g) for g in groups)
        notes.insert(
            0,
            f"not compared side by side: the runs were measured on different data or with different "
            f"options ({split}); each group has its own table and no delta is taken between groups "
            f"(evaluate them on the same folder, e.g. 'fcnlab {task} eval --ckpt RUN --data VAL', "
            f"or choose one evaluation with --eval NAME)",
        )
    for r in runs:
        if not r.source:
            notes.append(f"{r.name}: nothing to compare yet; train it or run 'fcnlab {r.task} eval --ckpt {r.path}'")
    return Comparison(task, names, rows, sources, notes, groups)


def compare_runs(runs: Sequence[str | Path | RunInfo], wanted: str | None = None) -> Comparison:
    """Compare run folders (paths or loaded :class:`RunInfo`, ``wanted``: the evaluation to show of each
    folder); see the module docstring."""
    infos = [r for r in runs if isinstance(r, RunInfo)]
    if len(infos) != len(runs):
        if infos:
            raise TypeError("pass either run folders or RunInfo objects, not both")
        infos = load_runs([Path(r) for r in runs], wanted)  # type: ignore[arg-type]
    return compare_infos(infos)
