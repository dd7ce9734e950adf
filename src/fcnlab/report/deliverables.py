"""The homework deliverables of a report, as the seed prints them: P1's ``Val Acc`` line and t-SNE figure, P2's
masks at the snapshot epochs and the course's ``class #i`` / ``mean_iou`` printout.

Each function returns the blocks of one deliverable of one run; :class:`fcnlab.report.document.ReportBuilder`
shows the ones each task lists in its TaskInfo (``DELIVERABLES``).
"""

from __future__ import annotations

from collections.abc import Sequence

from fcnlab.report.blocks import Block, Heading, Para, Printout
from fcnlab.report.compare import fmt_value
from fcnlab.report.figures import file_blocks
from fcnlab.report.runs import RunInfo


def val_acc_printout(run: RunInfo) -> list[Block]:
    """P1: the seed's ``Val Acc`` line."""
    return [
        Heading(3, f"P1 {run.name}: validation accuracy"),
        Printout(f"Val Acc: {fmt_value(run.val_acc, 6)}", run.source or "not evaluated yet"),
    ]


def tsne_figure(prefix: str, run: RunInfo, warnings: list[str]) -> list[Block]:
    """P1: the t-SNE of the penultimate features, or how to draw it (unreadable figures go to ``warnings``)."""
    blocks: list[Block] = [Heading(3, f"P1 {run.name}: t-SNE of the penultimate features")]
    blocks += file_blocks(
        run.tsne,
        f"{prefix}_tsne.png",
        f"{run.name}: t-SNE",
        f"no t-SNE figure: run 'fcnlab {run.task} tsne --ckpt {run.path} --data VAL_FOLDER "
        f"--out {run.path / 'tsne.png'}'",
        warnings,
    )
    if run.tsne_stale:
        blocks.append(
            Para(f"STALE t-SNE: {run.tsne_stale}; draw it again or write the report with --refresh", note=True)
        )
    return blocks


def mask_figures(prefix: str, run: RunInfo, warnings: list[str]) -> list[Block]:
    """P2: the predicted masks at the snapshot epochs (one figure of all epochs when training drew it; unreadable
    figures go to ``warnings``)."""
    epochs = ", ".join(str(e) for e in sorted(run.snapshots)) or "the snapshot epochs"
    blocks: list[Block] = [Heading(3, f"P2 {run.name}: predicted masks at epochs {epochs}")]
    if run.all_epochs is not None:
        blocks += file_blocks(
            run.all_epochs,
            f"{prefix}_masks.png",
            f"{run.name}: masks at epochs {epochs} (rows: tiles; columns: epoch and its validation mIoU)",
            "",
            warnings,
        )
    elif run.snapshots:
        for epoch, path in sorted(run.snapshots.items()):
            blocks += file_blocks(
                path, f"{prefix}_masks_{epoch:03d}.png", f"{run.name}: masks at epoch {epoch}", "", warnings
            )
    else:
        blocks.append(
            Para(
                "no mask snapshots: train with --snapshot-epochs 5,25,50 (and "
                "--snapshot-images NAMES to choose the tiles)",
                note=True,
            )
        )
    return blocks


def course_printout(run: RunInfo) -> list[Block]:
    """P2: the course's ``class #i`` / ``mean_iou`` lines."""
    heading = Heading(3, f"P2 {run.name}: mean IoU (the course's printout)")
    if run.per_class_iou is not None:
        return [heading, Printout(course_lines(run.per_class_iou), run.source)]
    return [
        heading,
        Para(f"no per-class IoU yet: run 'fcnlab {run.task} eval --ckpt {run.path} --data VAL_FOLDER'", note=True),
    ]


def course_lines(per_class: Sequence[float]) -> str:
    """The course's printout of per-class IoU: ``class #i : %1.5f``, a blank line, ``mean_iou: %f`` (nan when a
    class is nan, as the course's script prints it)."""
    lines = [f"class #{i:d} : {v:1.5f}" for i, v in enumerate(per_class)]
    return "\n".join(lines) + f"\n\nmean_iou: {sum(per_class) / len(per_class):f}"
