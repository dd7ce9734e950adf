"""``fcnlab report --refresh``: re-run the evaluations and t-SNE figures of runs that are stale (made from an
older ``best.pt`` than the run's current one), with the data and options each one recorded."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from fcnlab.cli.common import note
from fcnlab.runs import EVAL_JSON


def _run_command(argv: list[str]) -> int:
    """Run one fcnlab sub-command in this process; its printout goes to stderr (the report's stdout stays its
    own)."""
    from fcnlab.cli.main import build_parser

    args = build_parser(argv[0]).parse_args(argv)
    with contextlib.redirect_stdout(sys.stderr):
        return int(args.func(args) or 0)


def rerun_argv(task: str, action: str, run: Path, record: dict[str, Any], device: str) -> list[str] | None:
    """The command that makes the evaluation (``action`` eval) or t-SNE (tsne) of ``record`` again from the run's
    current checkpoint of the same name (images decoded in this process: no worker processes started from
    inside the report); None when the record lacks the checkpoint or its data is gone."""
    ck, data = record.get("checkpoint") or {}, record.get("data")
    if not isinstance(ck, dict) or not data or not Path(str(data)).is_dir():
        return None
    argv = [
        task,
        action,
        "--ckpt",
        str(run / str(ck.get("name", "best.pt"))),
        "--data",
        str(data),
        "--device",
        device,
        "--workers",
        "0",
        "--tta",
        str(record.get("tta", "none")),
    ]
    scales = [float(s) for s in record.get("scales") or [1.0]]
    if scales != [1.0]:
        argv += ["--scales", ",".join(f"{s:g}" for s in scales)]
    if record.get("labels_csv") and action == "eval":
        argv += ["--csv", str(record["labels_csv"])]
    return argv


def refresh_runs(paths: Sequence[str | Path], device: str = "auto") -> int:
    """Re-run every stale evaluation and t-SNE of the run folders ``paths``; return how many were re-run. One
    that cannot be (its data folder is gone, or it records no options: an older fcnlab) gets a note."""
    import json

    from fcnlab.evaluate.record import npz_record
    from fcnlab.report.runs import load_run
    from fcnlab.runs import list_evaluations

    done = 0
    for path in paths:
        info = load_run(path)
        run = Path(path)
        folders = list_evaluations(run)
        for name, measured, _ in info.evaluations:
            if not measured.stale:
                continue
            record = json.loads((folders[name] / EVAL_JSON).read_text())
            argv = rerun_argv(info.task, "eval", run, record, device)
            if argv is None:
                note(
                    f"{run}: cannot refresh {name} (no recorded checkpoint, or its data folder is gone); "
                    f"re-run 'fcnlab {info.task} eval' yourself"
                )
                continue
            note(f"refreshing {run}/{measured.source}: fcnlab {' '.join(argv)}", prefix="")
            done += _run_command(argv) == 0
        if info.tsne is not None and info.tsne_stale:
            record = npz_record(info.tsne.with_suffix(".npz")) or {}
            argv = rerun_argv(info.task, "tsne", run, record, device)
            if argv is None:
                note(
                    f"{run}: cannot refresh {info.tsne.name} (it records no checkpoint and data); draw it again "
                    f"with 'fcnlab {info.task} tsne'"
                )
                continue
            argv += ["--out", str(info.tsne), "--seed", str(record.get("seed", 0))]
            note(f"refreshing {info.tsne}: fcnlab {' '.join(argv)}", prefix="")
            done += _run_command(argv) == 0
    return done
