"""The comparison sections of a report, one per task with two runs or more: the tables with deltas
(:mod:`fcnlab.report.compare`), then per-class IoU bars, mIoU curves of every run on one plot and the same tiles
predicted by each model (P2), or accuracy curves and per-class accuracy side by side (P1).
"""

from __future__ import annotations

from collections.abc import Sequence

from fcnlab.report.blocks import Block, Heading, Para, Table
from fcnlab.report.checkpoints import CheckpointFacts
from fcnlab.report.compare import Comparison, compare_infos
from fcnlab.report.figures import iou_bars_png, metric_curves_png, per_class_acc_png, png_blocks, tiles_png
from fcnlab.report.runs import RunInfo
from fcnlab.tasks import TASKS, task_info


def comparison_tables(comp: Comparison, what: str) -> list[Block]:
    """One table per group of runs measured on the same data with the same options, then the notes
    (why runs are apart)."""
    blocks: list[Block] = []
    for g in range(len(comp.groups)):
        header, rows = comp.table(group=g)
        blocks.append(Table(header, rows, caption=what + comp.caption(g)))
    if len(comp.groups) > 1 and comp.notes:
        blocks.append(Para(comp.notes[0], note=True))
    return blocks


def comparison_sections(runs: Sequence[RunInfo], facts: CheckpointFacts | None) -> list[Block]:
    """A section per task with two runs or more (IoU-scored tasks first); ``facts``: what loading the
    checkpoints gave (the tiles each P2 model predicts), None without checkpoints."""
    blocks: list[Block] = []
    for task in sorted(TASKS, key=lambda t: not task_info(t).iou):  # IoU-scored tasks first
        group = [r for r in runs if r.task == task]
        if len(group) < 2:
            continue
        info = task_info(task)
        comp = compare_infos(group)
        blocks.append(Heading(2, f"Comparison: {info.label}", f"compare-{task}"))
        if "course_miou" in info.deliverables:  # the table is shown with the course's printouts
            blocks.append(Para("The per-class IoU table with deltas is in Homework deliverables above."))
        else:
            blocks += comparison_tables(comp, "validation accuracy, ")
        for note in comp.notes[1 if len(comp.groups) > 1 else 0 :]:
            blocks.append(Para(note, note=True))
        if info.iou:
            blocks += iou_comparison(group, facts)
        else:
            blocks += accuracy_comparison(group)
    return blocks


def iou_comparison(group: list[RunInfo], facts: CheckpointFacts | None) -> list[Block]:
    """Per-class IoU bars, mIoU curves of every run on one plot, the same tiles predicted by each model."""
    blocks: list[Block] = []
    scored = [r for r in group if r.per_class_iou is not None]
    if len(scored) >= 2:
        blocks.append(Heading(3, "Per-class IoU, side by side"))
        blocks += png_blocks(
            iou_bars_png([r.name for r in scored], [r.per_class_iou or [] for r in scored], [r.miou for r in scored]),
            "compare_iou_bars.png",
            "per-class IoU and mean IoU of each run",
        )
    blocks += _curves(group, "val_miou", "mIoU", "compare_miou_curves.png")
    blocks.append(Heading(3, "The same validation tiles, predicted by each model"))
    tiles = facts.tiles if facts is not None else None
    if tiles is not None and len(tiles.predictions) >= 2:
        names = list(tiles.predictions)
        blocks += png_blocks(
            tiles_png(
                tiles.names,
                tiles.images,
                tiles.truths,
                tiles.predictions,
                "Satellite, ground truth and each model's prediction",
            ),
            "compare_tiles.png",
            f"{len(tiles.names)} validation tiles predicted by {', '.join(names)} (their checkpoints, at report time)",
        )
    elif facts is None:
        blocks.append(
            Para("not drawn: the report was written without loading checkpoints (--no-checkpoints)", note=True)
        )
    else:
        blocks.append(Para(f"not drawn: {facts.tiles_note or 'no validation tiles found'}", note=True))
    return blocks


def accuracy_comparison(group: list[RunInfo]) -> list[Block]:
    """Validation accuracy of every run per epoch on one plot, and per-class accuracy side by side."""
    blocks = _curves(group, "val_acc", "accuracy", "compare_acc_curves.png")
    scored = [r for r in group if r.per_class_acc]
    if len(scored) >= 2:
        blocks.append(Heading(3, "Per-class accuracy, side by side"))
        blocks += png_blocks(
            per_class_acc_png([r.name for r in scored], [r.per_class_acc or [] for r in scored]),
            "compare_class_acc.png",
            "validation accuracy of each class, per run",
        )
    return blocks


def _curves(group: list[RunInfo], column: str, metric: str, file: str) -> list[Block]:
    """One plot of ``column`` per epoch for every run of ``group`` that has metrics (star: best epoch)."""
    with_metrics = [r for r in group if r.metrics is not None]
    if not with_metrics:
        return []
    png = metric_curves_png(
        [r.name for r in with_metrics],
        [r.metrics for r in with_metrics],  # type: ignore[misc]
        column,
        f"validation {metric}",
        f"Validation {metric} per epoch",
    )
    if png is None:
        return []
    return [
        Heading(3, f"Validation {metric} per epoch"),
        *png_blocks(png, file, f"{metric} of every run per epoch (star: best epoch)"),
    ]
