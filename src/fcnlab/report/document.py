"""Assemble the report of a set of runs as format-neutral blocks (see :mod:`fcnlab.report.blocks`).

Sections: summary, comparison with deltas (per task, when it has two runs or more: per-class IoU bars,
mIoU or accuracy curves of every run on one plot, the same tiles predicted by each model), parameters and
inference speed measured from the checkpoints, timings and hardware, provenance, then one section per run:
config, training curves, P1 validation accuracy / per-class accuracy / confusion matrix / t-SNE or P2
per-class IoU table / IoU curves / confusion matrix / masks at the snapshot epochs, and the printed
architecture. A missing optional file becomes a short note saying how to produce it.

The sections are drawn by :mod:`fcnlab.report.overview` (summary, models, timings, provenance),
:mod:`fcnlab.report.deliverables` (the homework's printouts and figures), :mod:`fcnlab.report.compare_sections`
(the comparisons) and :mod:`fcnlab.report.run_section` (each run); :class:`ReportBuilder` puts them in order.
"""

from __future__ import annotations

from collections.abc import Sequence

from fcnlab.report import compare_sections, deliverables, overview, run_section
from fcnlab.report.blocks import Block, Heading, Image, Para
from fcnlab.report.checkpoints import CheckpointFacts
from fcnlab.report.compare import Comparison, compare_infos
from fcnlab.report.deliverables import course_lines
from fcnlab.report.runs import RunInfo
from fcnlab.runtime.provenance import commit_text
from fcnlab.tasks import TASKS, task_info

__all__ = ["DELIVERABLES", "ReportBuilder", "build_report", "course_lines", "image_count"]

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

    # ------------------------------------------------------------------------------ report-wide tables
    def summary(self) -> None:
        self.blocks += overview.summary_section(self.runs)

    def models(self) -> None:
        """Parameter counts and inference speed, measured at report time from the checkpoints."""
        self.blocks += overview.models_section(self.facts)

    def provenance(self) -> None:
        """Where each run came from: fcnlab version, git commit, command line, torch, device (env.json)."""
        self.blocks += overview.provenance_section(self.runs)

    def timings(self) -> None:
        self.blocks += overview.timings_section(self.runs)

    # ---------------------------------------------------------------------------- homework deliverables
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

    def val_acc_printout(self, prefix: str, run: RunInfo) -> None:
        """P1: the seed's ``Val Acc`` line."""
        self.blocks += deliverables.val_acc_printout(run)

    def tsne_figure(self, prefix: str, run: RunInfo) -> None:
        """P1: the t-SNE of the penultimate features, or how to draw it."""
        self.blocks += deliverables.tsne_figure(prefix, run, self.warnings)

    def mask_figures(self, prefix: str, run: RunInfo) -> None:
        """P2: the predicted masks at the snapshot epochs (one figure of all epochs when training drew it)."""
        self.blocks += deliverables.mask_figures(prefix, run, self.warnings)

    def course_printout(self, prefix: str, run: RunInfo) -> None:
        """P2: the course's ``class #i`` / ``mean_iou`` lines."""
        self.blocks += deliverables.course_printout(run)

    # -------------------------------------------------------------------------------------- comparisons
    def comparison_tables(self, comp: Comparison, what: str) -> None:
        """One table per group of runs measured on the same data with the same options, then the notes
        (why runs are apart)."""
        self.blocks += compare_sections.comparison_tables(comp, what)

    def comparisons(self) -> None:
        self.blocks += compare_sections.comparison_sections(self.runs, self.facts)

    def iou_comparison(self, group: list[RunInfo]) -> None:
        """Per-class IoU bars, mIoU curves of every run on one plot, the same tiles predicted by each model."""
        self.blocks += compare_sections.iou_comparison(group, self.facts)

    def accuracy_comparison(self, group: list[RunInfo]) -> None:
        """Validation accuracy of every run per epoch on one plot, and per-class accuracy side by side."""
        self.blocks += compare_sections.accuracy_comparison(group)

    # --------------------------------------------------------------------------------- one run's section
    def run_section(self, i: int, run: RunInfo) -> None:
        self.blocks += run_section.run_section(i, run, self.warnings)

    def evaluations(self, run: RunInfo) -> None:
        """Every evaluation of the run: what it was measured on and its number; the one shown is marked."""
        self.blocks += run_section.evaluations(run)

    def accuracy_section(self, prefix: str, run: RunInfo) -> None:
        self.blocks += run_section.accuracy_section(prefix, run, self.warnings)

    def iou_section(self, prefix: str, run: RunInfo) -> None:
        self.blocks += run_section.iou_section(prefix, run, self.warnings)


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
