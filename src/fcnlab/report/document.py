"""Assemble the report of a set of runs as format-neutral blocks (see :mod:`fcnlab.report.blocks`).

Sections: summary, comparison with deltas (per task, when it has two runs or more: per-class IoU bars,
mIoU or accuracy curves of every run on one plot, the same tiles predicted by each model), parameters and
inference speed measured from the checkpoints, timings and hardware, provenance, then one section per run:
config, training curves, P1 validation accuracy / per-class accuracy / confusion matrix / t-SNE or P2
per-class IoU table / IoU curves / confusion matrix / masks at the snapshot epochs, and the printed
architecture. A missing optional file becomes a short note saying how to produce it.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from pathlib import Path

import yaml

from fcnlab.data.mask_codec import CLASS_NAMES
from fcnlab.report.blocks import Block, Heading, Image, Para, Preformatted, Printout, Table
from fcnlab.report.checkpoints import CheckpointFacts
from fcnlab.report.compare import Comparison, compare_infos, fmt_value
from fcnlab.report.figures import (
    file_image,
    image_block,
    iou_bars_png,
    iou_curves_png,
    metric_curves_png,
    per_class_acc_png,
    tiles_png,
    training_curves_png,
)
from fcnlab.report.runs import RunInfo
from fcnlab.report.text import device_text, fmt_seconds
from fcnlab.runtime.provenance import commit_text
from fcnlab.tasks import TASKS, task_info


def _column(run: RunInfo, key: str) -> list[float]:
    return [row[key] for row in run.timing if key in row and not math.isnan(row[key])]


#: The method of :class:`ReportBuilder` that shows each homework deliverable a task lists in its TaskInfo.
DELIVERABLES = {
    "val_acc": "val_acc_printout",
    "tsne": "tsne_figure",
    "masks": "mask_figures",
    "course_miou": "course_printout",
}


class ReportBuilder:
    """Collects blocks and warnings while building the report of ``runs``."""

    def __init__(self, runs: Sequence[RunInfo], title: str | None = None, facts: CheckpointFacts | None = None):
        self.runs = list(runs)
        self.facts = facts
        self.title = title or "fcnlab report: " + ", ".join(r.name for r in self.runs)
        self.blocks: list[Block] = []
        self.warnings: list[str] = []

    # -------------------------------------------------------------------------------------------- helpers
    def _add_file(self, path: Path | None, name: str, caption: str, missing: str) -> None:
        if path is None:
            self.blocks.append(Para(missing, note=True))
            return
        block, warning = file_image(path, name, caption)
        if block is not None:
            self.blocks.append(block)
        else:
            self.warnings.append(warning or "")
            self.blocks.append(Para(warning or "", note=True))

    def _add_png(self, data: bytes | None, name: str, caption: str) -> None:
        if data is not None:
            self.blocks.append(image_block(data, name, caption))

    # ------------------------------------------------------------------------------------------- sections
    def build(self) -> list[Block]:
        """All blocks of the report."""
        from fcnlab.runtime.provenance import provenance

        me = provenance()
        commit = commit_text(me)
        self.blocks = [
            Heading(1, self.title),
            Para(
                f"{len(self.runs)} run{'s' if len(self.runs) > 1 else ''}, report by fcnlab "
                f"{me['fcnlab']}" + (f" (commit {commit})" if commit != "-" else "") + f": {me['command']}"
            ),
        ]
        self.summary()
        self.deliverables()
        self.comparisons()
        self.models()
        self.timings()
        self.provenance()
        for i, run in enumerate(self.runs):
            self.run_section(i, run)
        return self.blocks

    def summary(self) -> None:
        self.blocks.append(Heading(2, "Summary", "summary"))
        rows = []
        for run in self.runs:
            info = task_info(run.task)
            rows.append(
                [
                    run.name,
                    info.label,
                    run.model,
                    str(run.epochs_done),
                    str(run.best_epoch or "-"),
                    fmt_value(run.val_acc),
                    fmt_value(run.miou) if info.iou else "-",
                    run.source or "-",
                ]
            )
        self.blocks.append(
            Table(
                ["run", "task", "model", "epochs", "best epoch", "val accuracy", "val mIoU", "numbers from"],
                rows,
                caption="val accuracy: images (P1) or pixels (P2); val mIoU: the course's mean IoU of classes 0-5",
            )
        )

    def deliverables(self) -> None:
        """What the homework asks for, in the seed's own format: P1's ``Val Acc`` line and t-SNE; P2's masks at
        the snapshot epochs and the course's ``class #i`` / ``mean_iou`` lines per run, then the comparison."""
        self.blocks.append(Heading(2, "Homework deliverables", "homework"))
        self.blocks.append(
            Para(
                "The figures and printouts the homework asks for, as the seed prints them; each "
                "run's details follow in its own section."
            )
        )
        for i, run in enumerate(self.runs):
            for item in task_info(run.task).deliverables:
                getattr(self, DELIVERABLES[item])(f"run{i + 1}", run)
        for task in TASKS:
            group = [r for r in self.runs if r.task == task]
            if "course_miou" in task_info(task).deliverables and len(group) >= 2:  # the course's printouts compared
                self.blocks.append(Heading(3, "P2: " + " vs ".join(r.name for r in group)))
                self.comparison_tables(compare_infos(group), "per-class IoU and mean IoU, ")

    def comparison_tables(self, comp: Comparison, what: str) -> None:
        """One table per group of runs measured on the same data with the same options, then the notes
        (why runs are apart)."""
        for g in range(len(comp.groups)):
            header, rows = comp.table(group=g)
            self.blocks.append(Table(header, rows, caption=what + comp.caption(g)))
        if len(comp.groups) > 1 and comp.notes:
            self.blocks.append(Para(comp.notes[0], note=True))

    def val_acc_printout(self, prefix: str, run: RunInfo) -> None:
        """P1: the seed's ``Val Acc`` line."""
        self.blocks.append(Heading(3, f"P1 {run.name}: validation accuracy"))
        self.blocks.append(Printout(f"Val Acc: {fmt_value(run.val_acc, 6)}", run.source or "not evaluated yet"))

    def tsne_figure(self, prefix: str, run: RunInfo) -> None:
        """P1: the t-SNE of the penultimate features, or how to draw it."""
        self.blocks.append(Heading(3, f"P1 {run.name}: t-SNE of the penultimate features"))
        self._add_file(
            run.tsne,
            f"{prefix}_tsne.png",
            f"{run.name}: t-SNE",
            f"no t-SNE figure: run 'fcnlab {run.task} tsne --ckpt {run.path} --data VAL_FOLDER "
            f"--out {run.path / 'tsne.png'}'",
        )
        if run.tsne_stale:
            self.blocks.append(
                Para(f"STALE t-SNE: {run.tsne_stale}; draw it again or write the report with --refresh", note=True)
            )

    def mask_figures(self, prefix: str, run: RunInfo) -> None:
        """P2: the predicted masks at the snapshot epochs (one figure of all epochs when training drew it)."""
        epochs = ", ".join(str(e) for e in sorted(run.snapshots)) or "the snapshot epochs"
        self.blocks.append(Heading(3, f"P2 {run.name}: predicted masks at epochs {epochs}"))
        if run.all_epochs is not None:
            self._add_file(
                run.all_epochs,
                f"{prefix}_masks.png",
                f"{run.name}: masks at epochs {epochs} (rows: tiles; columns: epoch and its validation mIoU)",
                "",
            )
        elif run.snapshots:
            for epoch, path in sorted(run.snapshots.items()):
                self._add_file(path, f"{prefix}_masks_{epoch:03d}.png", f"{run.name}: masks at epoch {epoch}", "")
        else:
            self.blocks.append(
                Para(
                    "no mask snapshots: train with --snapshot-epochs 5,25,50 (and "
                    "--snapshot-images NAMES to choose the tiles)",
                    note=True,
                )
            )

    def course_printout(self, prefix: str, run: RunInfo) -> None:
        """P2: the course's ``class #i`` / ``mean_iou`` lines."""
        self.blocks.append(Heading(3, f"P2 {run.name}: mean IoU (the course's printout)"))
        if run.per_class_iou is not None:
            self.blocks.append(Printout(course_lines(run.per_class_iou), run.source))
        else:
            self.blocks.append(
                Para(
                    f"no per-class IoU yet: run 'fcnlab {run.task} eval --ckpt {run.path} --data VAL_FOLDER'", note=True
                )
            )

    def comparisons(self) -> None:
        for task in sorted(TASKS, key=lambda t: not task_info(t).iou):  # IoU-scored tasks first
            group = [r for r in self.runs if r.task == task]
            if len(group) < 2:
                continue
            info = task_info(task)
            comp = compare_infos(group)
            self.blocks.append(Heading(2, f"Comparison: {info.label}", f"compare-{task}"))
            if "course_miou" in info.deliverables:  # the table is shown with the course's printouts
                self.blocks.append(Para("The per-class IoU table with deltas is in Homework deliverables above."))
            else:
                self.comparison_tables(comp, "validation accuracy, ")
            for note in comp.notes[1 if len(comp.groups) > 1 else 0 :]:
                self.blocks.append(Para(note, note=True))
            if info.iou:
                self.iou_comparison(group)
            else:
                self.accuracy_comparison(group)

    def iou_comparison(self, group: list[RunInfo]) -> None:
        """Per-class IoU bars, mIoU curves of every run on one plot, the same tiles predicted by each model."""
        scored = [r for r in group if r.per_class_iou is not None]
        if len(scored) >= 2:
            self.blocks.append(Heading(3, "Per-class IoU, side by side"))
            self._add_png(
                iou_bars_png(
                    [r.name for r in scored], [r.per_class_iou or [] for r in scored], [r.miou for r in scored]
                ),
                "compare_iou_bars.png",
                "per-class IoU and mean IoU of each run",
            )
        self._curves(group, "val_miou", "mIoU", "compare_miou_curves.png")
        self.blocks.append(Heading(3, "The same validation tiles, predicted by each model"))
        tiles = self.facts.tiles if self.facts is not None else None
        if tiles is not None and len(tiles.predictions) >= 2:
            names = list(tiles.predictions)
            self._add_png(
                tiles_png(
                    tiles.names,
                    tiles.images,
                    tiles.truths,
                    tiles.predictions,
                    "Satellite, ground truth and each model's prediction",
                ),
                "compare_tiles.png",
                f"{len(tiles.names)} validation tiles predicted by {', '.join(names)} "
                f"(their checkpoints, at report time)",
            )
        elif self.facts is None:
            self.blocks.append(
                Para("not drawn: the report was written without loading checkpoints (--no-checkpoints)", note=True)
            )
        else:
            self.blocks.append(Para(f"not drawn: {self.facts.tiles_note or 'no validation tiles found'}", note=True))

    def _curves(self, group: list[RunInfo], column: str, metric: str, file: str) -> None:
        """One plot of ``column`` per epoch for every run of ``group`` that has metrics (star: best epoch)."""
        with_metrics = [r for r in group if r.metrics is not None]
        if not with_metrics:
            return
        png = metric_curves_png(
            [r.name for r in with_metrics],
            [r.metrics for r in with_metrics],  # type: ignore[misc]
            column,
            f"validation {metric}",
            f"Validation {metric} per epoch",
        )
        if png is not None:
            self.blocks.append(Heading(3, f"Validation {metric} per epoch"))
            self._add_png(png, file, f"{metric} of every run per epoch (star: best epoch)")

    def accuracy_comparison(self, group: list[RunInfo]) -> None:
        """Validation accuracy of every run per epoch on one plot, and per-class accuracy side by side."""
        self._curves(group, "val_acc", "accuracy", "compare_acc_curves.png")
        scored = [r for r in group if r.per_class_acc]
        if len(scored) >= 2:
            self.blocks.append(Heading(3, "Per-class accuracy, side by side"))
            self._add_png(
                per_class_acc_png([r.name for r in scored], [r.per_class_acc or [] for r in scored]),
                "compare_class_acc.png",
                "validation accuracy of each class, per run",
            )

    def models(self) -> None:
        """Parameter counts and inference speed, measured at report time from the checkpoints."""
        self.blocks.append(Heading(2, "Models: parameters and inference speed", "models"))
        if self.facts is None:
            self.blocks.append(Para("not measured: the report was written with --no-checkpoints", note=True))
            return
        rows = []
        for m in self.facts.models:
            rows.append(
                [
                    m.run,
                    m.model,
                    f"{m.params:,}",
                    f"{m.trainable:,}",
                    "x".join(map(str, m.input_shape)),
                    f"{m.seconds_per_batch * 1000:.1f}",
                    f"{m.per_second:.1f} {m.unit}/s",
                ]
            )
        if rows:
            self.blocks.append(
                Table(
                    ["run", "model", "parameters", "trainable", "input (uint8)", "ms per batch", "throughput"],
                    rows,
                    caption=f"measured when this report was written, on {self.facts.device}: "
                    f"inference mode with fused BatchNorm, median of timed batches "
                    f"after one warm-up (not the training machine's speed)",
                )
            )
        for note in [self.facts.missing_note(), *self.facts.notes]:
            if note:
                self.blocks.append(Para(note, note=True))

    def provenance(self) -> None:
        """Where each run came from: fcnlab version, git commit, command line, torch, device (env.json)."""
        self.blocks.append(Heading(2, "Provenance", "provenance"))
        rows = []
        for run in self.runs:
            env = run.env
            rows.append(
                [
                    run.name,
                    str(env.get("fcnlab", "-")),
                    commit_text(env),
                    str(env.get("torch", "-")),
                    str(env.get("device") or device_text(env)),
                    str(env.get("command", "-")),
                ]
            )
        self.blocks.append(
            Table(
                ["run", "fcnlab", "git commit", "torch", "device", "command"],
                rows,
                caption="from each run's env.json, written when training started ('-': not "
                "recorded, e.g. a run of an older fcnlab or an installed copy)",
            )
        )
        rows = [
            [run.name, str(c.get("what", "?")), str(c.get("time", "-")), str(c.get("command", "-"))]
            for run in self.runs
            for c in run.env.get("commands") or []
            if isinstance(c, dict)
        ]
        if rows:
            self.blocks.append(
                Table(
                    ["run", "what", "time (UTC)", "command"],
                    rows,
                    caption="every command that wrote to each run folder (env.json commands)",
                )
            )

    def timings(self) -> None:
        self.blocks.append(Heading(2, "Timings and hardware", "timings"))
        rows = []
        for run in self.runs:
            train, epoch, speed = (_column(run, k) for k in ("train_seconds", "epoch_seconds", "train_img_per_s"))
            env = run.env
            rows.append(
                [
                    run.name,
                    device_text(env),
                    str(len(epoch)),
                    fmt_seconds(statistics.mean(train)) if train else "-",
                    fmt_seconds(statistics.mean(epoch)) if epoch else "-",
                    f"{statistics.median(speed):.1f}" if speed else "-",
                    fmt_seconds(sum(epoch)) if epoch else "-",
                    str(env.get("torch", "-")),
                    str(env.get("python", "-")),
                ]
            )
        self.blocks.append(
            Table(
                [
                    "run",
                    "device",
                    "epochs timed",
                    "train / epoch",
                    "epoch (with val)",
                    "train img/s (median)",
                    "total",
                    "torch",
                    "python",
                ],
                rows,
                caption="wall times from timing.csv, hardware from env.json",
            )
        )

    def run_section(self, i: int, run: RunInfo) -> None:
        prefix = f"run{i + 1}"
        self.blocks.append(Heading(2, f"Run {run.name}", prefix))
        self.blocks.append(
            Para(
                f"{run.path} - {task_info(run.task).label}, model {run.model}, "
                f"{run.epochs_done} epochs; validation numbers from {run.source or 'nowhere yet'}."
            )
        )
        self.evaluations(run)
        if run.config:
            self.blocks.append(Preformatted("config.yaml", yaml.safe_dump(run.config, sort_keys=False)))
        self.blocks.append(Heading(3, "Training curves"))
        if run.metrics is not None:
            self._add_png(
                training_curves_png(run.metrics, f"Training curves ({run.name})"),
                f"{prefix}_curves.png",
                f"{run.name}: loss and accuracy / mIoU per epoch",
            )
        else:
            self.blocks.append(Para("no metrics.csv: no epoch has finished yet", note=True))
        if task_info(run.task).iou:
            self.iou_section(prefix, run)
        else:
            self.accuracy_section(prefix, run)
        self.blocks.append(Heading(3, "Architecture"))
        if run.model_txt is not None:
            lines = run.model_txt.count("\n") + 1
            self.blocks.append(Preformatted(f"model.txt: print(model) of {run.model} ({lines} lines)", run.model_txt))
        else:
            self.blocks.append(Para("no model.txt in the run folder", note=True))
        for note in run.notes:
            self.blocks.append(Para(f"note: {note}", note=True))

    def evaluations(self, run: RunInfo) -> None:
        """Every evaluation of the run: what it was measured on and its number; the one shown is marked."""
        if not run.evaluations:
            return
        metric = "mIoU" if task_info(run.task).iou else "accuracy"
        rows = [
            [("▶ " if name == run.eval_name else "") + name, fmt_value(value), m.describe()]
            for name, m, value in run.evaluations
        ]
        self.blocks.append(
            Table(
                ["evaluation", metric, "measured"],
                rows,
                caption="▶: the one this report shows (choose another with --eval NAME)",
            )
        )

    def accuracy_section(self, prefix: str, run: RunInfo) -> None:
        self.blocks.append(Heading(3, "Validation accuracy"))
        self.blocks.append(Para(f"Val Acc: {fmt_value(run.val_acc, 6)} ({run.source or 'not evaluated yet'})"))
        self.blocks.append(Heading(3, "Per-class accuracy"))
        if run.per_class_acc:
            self._add_png(
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
            self.blocks.append(
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
            self.blocks.append(
                Para(
                    f"{where}: run 'fcnlab {run.task} eval --ckpt {run.path} --data VAL_FOLDER'"
                    + (", or show another evaluation with --eval NAME" if run.evaluations else ""),
                    note=True,
                )
            )
        self._add_file(
            run.confusion,
            f"{prefix}_confusion.png",
            f"{run.name}: confusion matrix",
            f"no confusion matrix: run 'fcnlab {run.task} eval --ckpt {run.path} --data VAL_FOLDER'",
        )
        self.blocks.append(Para("Val Acc and the t-SNE figure: see Homework deliverables.", note=True))

    def iou_section(self, prefix: str, run: RunInfo) -> None:
        self.blocks.append(Heading(3, "Per-class IoU"))
        if run.per_class_iou is not None:
            rows = [[str(c), CLASS_NAMES[c], fmt_value(v, 5)] for c, v in enumerate(run.per_class_iou)]
            rows.append(["", "mean IoU", fmt_value(run.miou, 6)])
            self.blocks.append(Table(["class", "name", "IoU"], rows, caption=run.source))
        else:
            self.blocks.append(Para("no per-class IoU yet", note=True))
        if run.metrics is not None:
            self._add_png(
                iou_curves_png(run.metrics, f"Validation IoU per class ({run.name})"),
                f"{prefix}_iou_curves.png",
                f"{run.name}: validation IoU per class and epoch",
            )
        self._add_file(
            run.confusion,
            f"{prefix}_confusion.png",
            f"{run.name}: confusion matrix (pixels)",
            f"no confusion matrix: run 'fcnlab {run.task} eval --ckpt {run.path} --data VAL_FOLDER'",
        )
        self.blocks.append(
            Para("Masks at the snapshot epochs and the course's printout: see Homework deliverables.", note=True)
        )


def course_lines(per_class: Sequence[float]) -> str:
    """The course's printout of per-class IoU: ``class #i : %1.5f``, a blank line, ``mean_iou: %f`` (nan when a
    class is nan, as the course's script prints it)."""
    lines = [f"class #{i:d} : {v:1.5f}" for i, v in enumerate(per_class)]
    return "\n".join(lines) + f"\n\nmean_iou: {sum(per_class) / len(per_class):f}"


def build_report(
    runs: Sequence[RunInfo], title: str | None = None, facts: CheckpointFacts | None = None
) -> tuple[list[Block], list[str]]:
    """The blocks of the report of ``runs`` and the warnings met (unreadable figures).

    ``facts`` holds what loading the checkpoints gave (:func:`fcnlab.report.checkpoints.measure_runs`);
    None: the report says it was written without them.
    """
    builder = ReportBuilder(runs, title, facts)
    blocks = builder.build()
    return blocks, builder.warnings


def image_count(blocks: Sequence[Block]) -> int:
    """Number of images in ``blocks``."""
    return sum(isinstance(b, Image) for b in blocks)
