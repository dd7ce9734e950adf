"""The section of one run in a report: its evaluations, config, training curves, then P1's validation accuracy /
per-class accuracy / confusion matrix or P2's per-class IoU table / IoU curves / confusion matrix, and the
printed architecture. The homework deliverables are shown once, above (:mod:`fcnlab.report.deliverables`)."""

from __future__ import annotations

import yaml

from fcnlab.data.mask_codec import CLASS_NAMES
from fcnlab.report.blocks import Block, Heading, Para, Preformatted, Table
from fcnlab.report.compare import fmt_value
from fcnlab.report.figures import file_blocks, iou_curves_png, per_class_acc_png, png_blocks, training_curves_png
from fcnlab.report.runs import RunInfo
from fcnlab.tasks import task_info


def run_section(i: int, run: RunInfo, warnings: list[str]) -> list[Block]:
    """The section of run number ``i`` (from 0); its images are named ``run<i+1>_...`` and unreadable figures
    go to ``warnings``."""
    prefix = f"run{i + 1}"
    blocks: list[Block] = [
        Heading(2, f"Run {run.name}", prefix),
        Para(
            f"{run.path} - {task_info(run.task).label}, model {run.model}, "
            f"{run.epochs_done} epochs; validation numbers from {run.source or 'nowhere yet'}."
        ),
    ]
    blocks += evaluations(run)
    if run.config:
        blocks.append(Preformatted("config.yaml", yaml.safe_dump(run.config, sort_keys=False)))
    blocks.append(Heading(3, "Training curves"))
    if run.metrics is not None:
        blocks += png_blocks(
            training_curves_png(run.metrics, f"Training curves ({run.name})"),
            f"{prefix}_curves.png",
            f"{run.name}: loss and accuracy / mIoU per epoch",
        )
    else:
        blocks.append(Para("no metrics.csv: no epoch has finished yet", note=True))
    if task_info(run.task).iou:
        blocks += iou_section(prefix, run, warnings)
    else:
        blocks += accuracy_section(prefix, run, warnings)
    blocks.append(Heading(3, "Architecture"))
    if run.model_txt is not None:
        lines = run.model_txt.count("\n") + 1
        blocks.append(Preformatted(f"model.txt: print(model) of {run.model} ({lines} lines)", run.model_txt))
    else:
        blocks.append(Para("no model.txt in the run folder", note=True))
    for note in run.notes:
        blocks.append(Para(f"note: {note}", note=True))
    return blocks


def evaluations(run: RunInfo) -> list[Block]:
    """Every evaluation of the run: what it was measured on and its number; the one shown is marked."""
    if not run.evaluations:
        return []
    metric = "mIoU" if task_info(run.task).iou else "accuracy"
    rows = [
        [("▶ " if name == run.eval_name else "") + name, fmt_value(value), m.describe()]
        for name, m, value in run.evaluations
    ]
    return [
        Table(
            ["evaluation", metric, "measured"],
            rows,
            caption="▶: the one this report shows (choose another with --eval NAME)",
        )
    ]


def accuracy_section(prefix: str, run: RunInfo, warnings: list[str]) -> list[Block]:
    """P1: validation accuracy, per-class accuracy (figure, hardest and easiest classes), confusion matrix."""
    blocks: list[Block] = [
        Heading(3, "Validation accuracy"),
        Para(f"Val Acc: {fmt_value(run.val_acc, 6)} ({run.source or 'not evaluated yet'})"),
        Heading(3, "Per-class accuracy"),
    ]
    if run.per_class_acc:
        blocks += png_blocks(
            per_class_acc_png([run.name], [run.per_class_acc]),
            f"{prefix}_class_acc.png",
            f"{run.name}: validation accuracy of each class",
        )
        order = sorted(range(len(run.per_class_acc)), key=lambda c: (run.per_class_acc[c], c))  # type: ignore[index]
        k = min(5, len(order) // 2) or 1
        rows = [
            [str(w), fmt_value(run.per_class_acc[w], 3), str(b), fmt_value(run.per_class_acc[b], 3)]
            for w, b in zip(order[:k], order[::-1][:k], strict=True)
        ]
        blocks.append(
            Table(
                ["hardest class", "accuracy", "easiest class", "accuracy"],
                rows,
                caption=f"{run.name}: the {k} lowest and highest per-class accuracies",
            )
        )
    else:
        where = (
            f"the numbers shown ({run.measured.source}) hold no per-class accuracy"
            if run.measured is not None
            else "no per-class accuracy"
        )
        blocks.append(
            Para(
                f"{where}: run 'fcnlab {run.task} eval --ckpt {run.path} --data VAL_FOLDER'"
                + (", or show another evaluation with --eval NAME" if run.evaluations else ""),
                note=True,
            )
        )
    blocks += file_blocks(
        run.confusion,
        f"{prefix}_confusion.png",
        f"{run.name}: confusion matrix",
        f"no confusion matrix: run 'fcnlab {run.task} eval --ckpt {run.path} --data VAL_FOLDER'",
        warnings,
    )
    blocks.append(Para("Val Acc and the t-SNE figure: see Homework deliverables.", note=True))
    return blocks


def iou_section(prefix: str, run: RunInfo, warnings: list[str]) -> list[Block]:
    """P2: per-class IoU table, validation IoU curves per class, confusion matrix (pixels)."""
    blocks: list[Block] = [Heading(3, "Per-class IoU")]
    if run.per_class_iou is not None:
        rows = [[str(c), CLASS_NAMES[c], fmt_value(v, 5)] for c, v in enumerate(run.per_class_iou)]
        rows.append(["", "mean IoU", fmt_value(run.miou, 6)])
        blocks.append(Table(["class", "name", "IoU"], rows, caption=run.source))
    else:
        blocks.append(Para("no per-class IoU yet", note=True))
    if run.metrics is not None:
        blocks += png_blocks(
            iou_curves_png(run.metrics, f"Validation IoU per class ({run.name})"),
            f"{prefix}_iou_curves.png",
            f"{run.name}: validation IoU per class and epoch",
        )
    blocks += file_blocks(
        run.confusion,
        f"{prefix}_confusion.png",
        f"{run.name}: confusion matrix (pixels)",
        f"no confusion matrix: run 'fcnlab {run.task} eval --ckpt {run.path} --data VAL_FOLDER'",
        warnings,
    )
    blocks.append(Para("Masks at the snapshot epochs and the course's printout: see Homework deliverables.", note=True))
    return blocks
