"""Assemble the report of a set of runs as format-neutral blocks (see :mod:`fcnlab.report.blocks`).

Sections: summary, comparison with deltas (per task, when it has two runs or more), timings and hardware,
then one section per run: config, training curves, P1 validation accuracy / confusion matrix / t-SNE or
P2 per-class IoU table / IoU curves / confusion matrix / masks at the snapshot epochs, and the printed
architecture. A missing optional file becomes a short note saying how to produce it.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from pathlib import Path

import yaml

from fcnlab.data.mask_codec import CLASS_NAMES
from fcnlab.report.blocks import Block, Heading, Image, Para, Preformatted, Table
from fcnlab.report.compare import compare_infos, fmt_value
from fcnlab.report.figures import file_image, image_block, iou_curves_png, training_curves_png
from fcnlab.report.runs import TASK_LABELS, RunInfo


def fmt_seconds(seconds: float) -> str:
    """``12.3 s``, ``4 min 05 s`` or ``2 h 03 min``."""
    if math.isnan(seconds):
        return "-"
    if seconds < 60:
        return f"{seconds:.1f} s"
    if seconds < 3600:
        return f"{int(seconds // 60)} min {int(seconds % 60):02d} s"
    return f"{int(seconds // 3600)} h {int(seconds % 3600 // 60):02d} min"


def _column(run: RunInfo, key: str) -> list[float]:
    return [row[key] for row in run.timing if key in row and not math.isnan(row[key])]


def device_text(env: dict) -> str:
    """The hardware of ``env.json`` in a few words."""
    if not env:
        return "-"
    if env.get("cuda") and env.get("gpu"):
        return f"{env['gpu']} (CUDA {env.get('cuda_version', '?')})"
    cores = env.get("cpu_count")
    return f"CPU {env.get('cpu', '')}".strip() + (f", {cores} cores" if cores else "")


class ReportBuilder:
    """Collects blocks and warnings while building the report of ``runs``."""

    def __init__(self, runs: Sequence[RunInfo], title: str | None = None):
        self.runs = list(runs)
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
        from fcnlab import __version__

        self.blocks = [Heading(1, self.title),
                       Para(f"{len(self.runs)} run{'s' if len(self.runs) > 1 else ''}, report by fcnlab "
                            f"{__version__}.")]
        self.summary()
        self.comparisons()
        self.timings()
        for i, run in enumerate(self.runs):
            self.run_section(i, run)
        return self.blocks

    def summary(self) -> None:
        self.blocks.append(Heading(2, "Summary", "summary"))
        rows = []
        for run in self.runs:
            rows.append([run.name, TASK_LABELS[run.task], run.model, str(run.epochs_done),
                         str(run.best_epoch or "-"), fmt_value(run.val_acc),
                         fmt_value(run.miou) if run.task == "segment" else "-", run.source or "-"])
        self.blocks.append(Table(["run", "task", "model", "epochs", "best epoch", "val accuracy", "val mIoU",
                                  "numbers from"], rows,
                                 caption="val accuracy: images (P1) or pixels (P2); val mIoU: the course's mean "
                                         "IoU of classes 0-5"))

    def comparisons(self) -> None:
        for task in ("segment", "classify"):
            group = [r for r in self.runs if r.task == task]
            if len(group) < 2:
                continue
            comp = compare_infos(group)
            header, rows = comp.table()
            self.blocks.append(Heading(2, f"Comparison: {TASK_LABELS[task]}", f"compare-{task}"))
            what = "per-class IoU and mean IoU" if task == "segment" else "validation accuracy"
            self.blocks.append(Table(header, rows, caption=f"{what}; Δ = run - {comp.runs[0]}"))
            for note in comp.notes:
                self.blocks.append(Para(note, note=True))

    def timings(self) -> None:
        self.blocks.append(Heading(2, "Timings and hardware", "timings"))
        rows = []
        for run in self.runs:
            train, epoch, speed = (_column(run, k) for k in ("train_seconds", "epoch_seconds", "train_img_per_s"))
            env = run.env
            rows.append([run.name, device_text(env), str(len(epoch)),
                         fmt_seconds(statistics.mean(train)) if train else "-",
                         fmt_seconds(statistics.mean(epoch)) if epoch else "-",
                         f"{statistics.median(speed):.1f}" if speed else "-",
                         fmt_seconds(sum(epoch)) if epoch else "-",
                         str(env.get("torch", "-")), str(env.get("python", "-"))])
        self.blocks.append(Table(["run", "device", "epochs timed", "train / epoch", "epoch (with val)",
                                  "train img/s (median)", "total", "torch", "python"], rows,
                                 caption="wall times from timing.csv, hardware from env.json"))

    def run_section(self, i: int, run: RunInfo) -> None:
        prefix = f"run{i + 1}"
        self.blocks.append(Heading(2, f"Run {run.name}", prefix))
        self.blocks.append(Para(f"{run.path} - {TASK_LABELS[run.task]}, model {run.model}, "
                                f"{run.epochs_done} epochs; validation numbers from {run.source or 'nowhere yet'}."))
        if run.config:
            self.blocks.append(Preformatted("config.yaml", yaml.safe_dump(run.config, sort_keys=False)))
        self.blocks.append(Heading(3, "Training curves"))
        if run.metrics is not None:
            self._add_png(training_curves_png(run.metrics, f"Training curves ({run.name})"),
                          f"{prefix}_curves.png", f"{run.name}: loss and accuracy / mIoU per epoch")
        else:
            self.blocks.append(Para("no metrics.csv: no epoch has finished yet", note=True))
        if run.task == "classify":
            self.classify_section(prefix, run)
        else:
            self.segment_section(prefix, run)
        self.blocks.append(Heading(3, "Architecture"))
        if run.model_txt is not None:
            lines = run.model_txt.count("\n") + 1
            self.blocks.append(Preformatted(f"model.txt: print(model) of {run.model} ({lines} lines)",
                                            run.model_txt))
        else:
            self.blocks.append(Para("no model.txt in the run folder", note=True))
        for note in run.notes:
            self.blocks.append(Para(f"note: {note}", note=True))

    def classify_section(self, prefix: str, run: RunInfo) -> None:
        self.blocks.append(Heading(3, "Validation accuracy"))
        self.blocks.append(Para(f"Val Acc: {fmt_value(run.val_acc, 6)} ({run.source or 'not evaluated yet'})"))
        self._add_file(run.confusion, f"{prefix}_confusion.png", f"{run.name}: confusion matrix",
                       f"no confusion matrix: run 'fcnlab classify eval --ckpt {run.path} --data VAL_FOLDER'")
        self.blocks.append(Heading(3, "t-SNE of the penultimate features"))
        self._add_file(run.tsne, f"{prefix}_tsne.png", f"{run.name}: t-SNE",
                       f"no t-SNE figure: run 'fcnlab classify tsne --ckpt {run.path} --data VAL_FOLDER "
                       f"--out {run.path / 'tsne.png'}'")

    def segment_section(self, prefix: str, run: RunInfo) -> None:
        self.blocks.append(Heading(3, "Per-class IoU"))
        if run.per_class_iou is not None:
            rows = [[str(c), CLASS_NAMES[c], fmt_value(v, 5)] for c, v in enumerate(run.per_class_iou)]
            rows.append(["", "mean IoU", fmt_value(run.miou, 6)])
            self.blocks.append(Table(["class", "name", "IoU"], rows, caption=run.source))
        else:
            self.blocks.append(Para("no per-class IoU yet", note=True))
        if run.metrics is not None:
            self._add_png(iou_curves_png(run.metrics, f"Validation IoU per class ({run.name})"),
                          f"{prefix}_iou_curves.png", f"{run.name}: validation IoU per class and epoch")
        self._add_file(run.confusion, f"{prefix}_confusion.png", f"{run.name}: confusion matrix (pixels)",
                       f"no confusion matrix: run 'fcnlab segment eval --ckpt {run.path} --data VAL_FOLDER'")
        self.blocks.append(Heading(3, "Predicted masks at the snapshot epochs"))
        if run.all_epochs is not None:
            epochs = ", ".join(str(e) for e in sorted(run.snapshots)) or "all"
            self._add_file(run.all_epochs, f"{prefix}_masks.png", f"{run.name}: masks at epochs {epochs}", "")
        elif run.snapshots:
            for epoch, path in sorted(run.snapshots.items()):
                self._add_file(path, f"{prefix}_masks_{epoch:03d}.png", f"{run.name}: masks at epoch {epoch}", "")
        else:
            self.blocks.append(Para("no mask snapshots: train with --snapshot-epochs 5,25,50", note=True))


def build_report(runs: Sequence[RunInfo], title: str | None = None) -> tuple[list[Block], list[str]]:
    """The blocks of the report of ``runs`` and the warnings met (unreadable figures)."""
    builder = ReportBuilder(runs, title)
    blocks = builder.build()
    return blocks, builder.warnings


def image_count(blocks: Sequence[Block]) -> int:
    """Number of images in ``blocks``."""
    return sum(isinstance(b, Image) for b in blocks)

