"""The report-wide tables of a report: the summary of every run, the models' parameters and inference speed
(measured from the checkpoints), timings and hardware, and provenance (where each run came from)."""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence

from fcnlab.report.blocks import Block, Heading, Para, Table
from fcnlab.report.checkpoints import CheckpointFacts
from fcnlab.report.compare import fmt_value
from fcnlab.report.runs import RunInfo
from fcnlab.report.text import device_text, fmt_seconds
from fcnlab.runtime.provenance import commit_text
from fcnlab.tasks import task_info


def _column(run: RunInfo, key: str) -> list[float]:
    return [row[key] for row in run.timing if key in row and not math.isnan(row[key])]


def summary_section(runs: Sequence[RunInfo]) -> list[Block]:
    """One row per run: task, model, epochs, best epoch, validation accuracy and mIoU, where they come from."""
    rows = []
    for run in runs:
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
    return [
        Heading(2, "Summary", "summary"),
        Table(
            ["run", "task", "model", "epochs", "best epoch", "val accuracy", "val mIoU", "numbers from"],
            rows,
            caption="val accuracy: images (P1) or pixels (P2); val mIoU: the course's mean IoU of classes 0-5",
        ),
    ]


def models_section(facts: CheckpointFacts | None) -> list[Block]:
    """Parameter counts and inference speed, measured at report time from the checkpoints (``facts``; None:
    the report says it was written without them)."""
    blocks: list[Block] = [Heading(2, "Models: parameters and inference speed", "models")]
    if facts is None:
        blocks.append(Para("not measured: the report was written with --no-checkpoints", note=True))
        return blocks
    rows = []
    for m in facts.models:
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
        blocks.append(
            Table(
                ["run", "model", "parameters", "trainable", "input (uint8)", "ms per batch", "throughput"],
                rows,
                caption=f"measured when this report was written, on {facts.device}: "
                f"inference mode with fused BatchNorm, median of timed batches "
                f"after one warm-up (not the training machine's speed)",
            )
        )
    for note in [facts.missing_note(), *facts.notes]:
        if note:
            blocks.append(Para(note, note=True))
    return blocks


def provenance_section(runs: Sequence[RunInfo]) -> list[Block]:
    """Where each run came from: fcnlab version, git commit, command line, torch, device (env.json)."""
    rows = []
    for run in runs:
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
    blocks: list[Block] = [
        Heading(2, "Provenance", "provenance"),
        Table(
            ["run", "fcnlab", "git commit", "torch", "device", "command"],
            rows,
            caption="from each run's env.json, written when training started ('-': not "
            "recorded, e.g. a run of an older fcnlab or an installed copy)",
        ),
    ]
    rows = [
        [run.name, str(c.get("what", "?")), str(c.get("time", "-")), str(c.get("command", "-"))]
        for run in runs
        for c in run.env.get("commands") or []
        if isinstance(c, dict)
    ]
    if rows:
        blocks.append(
            Table(
                ["run", "what", "time (UTC)", "command"],
                rows,
                caption="every command that wrote to each run folder (env.json commands)",
            )
        )
    return blocks


def timings_section(runs: Sequence[RunInfo]) -> list[Block]:
    """Wall times per run from timing.csv (train and epoch time, images per second, total) and the hardware."""
    rows = []
    for run in runs:
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
    return [
        Heading(2, "Timings and hardware", "timings"),
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
        ),
    ]
