"""``fcnlab compare RUN_A RUN_B ...``: per-class IoU (P2) or accuracy (P1) of runs side by side, with deltas."""

from __future__ import annotations

import argparse
from pathlib import Path

from fcnlab.cli.arguments import add_eval_name


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``compare`` sub-command."""
    p = subparsers.add_parser(
        "compare",
        help="per-class IoU of runs side by side with mean IoU and deltas",
        description="Print a Markdown table comparing runs of one task: P2 runs by the IoU of classes 0-5 and "
        "the mean IoU, P1 runs by validation accuracy; after each run its difference from the "
        "first run. Numbers come from the run's evaluation on its own validation folder "
        "(RUN/eval/validation, or the one --eval names) when 'eval' was run, else from the best "
        "epoch of RUN/metrics.csv; each says what it was measured on. Runs measured on different "
        "data or with different options get separate tables and no delta.",
    )
    p.add_argument("runs", nargs="+", metavar="RUN", help="run folders; the first one is the reference")
    p.add_argument("--out", type=Path, help="also write the table to this Markdown file")
    add_eval_name(p)
    p.add_argument("--digits", type=int, default=4, choices=range(1, 9), metavar="N", help="decimals shown (default 4)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Print the comparison and write it to ``--out`` when given."""
    from fcnlab.errors import ConfigError
    from fcnlab.report.compare import compare_infos
    from fcnlab.report.runs import load_runs
    from fcnlab.runtime.files import atomic_write_text

    runs = load_runs(args.runs, args.eval_name)
    text = compare_infos(runs).to_markdown(args.digits)
    if args.out is not None:
        if args.out.is_dir():
            raise ConfigError(f"--out {args.out}: is a folder; give the Markdown file to write")
        inputs = {p.resolve() for r in runs for p in r.inputs}
        if args.out.resolve() in inputs:
            raise ConfigError(f"--out {args.out}: is an input file of a run; choose another file name")
    print(text, end="")
    if args.out is not None:
        atomic_write_text(args.out, text)
        print(f"\nwrote {args.out}")
    return 0
