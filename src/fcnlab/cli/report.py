"""``fcnlab report RUN [RUN ...] --out report.html``: one self-contained page (or Markdown) of a set of runs."""

from __future__ import annotations

import argparse
import sys

from fcnlab.cli.arguments import add_eval_name


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``report`` sub-command."""
    p = subparsers.add_parser(
        "report",
        help="HTML or Markdown report of one or more runs",
        description="Write one report of the given run folders: printed architecture, training curves, P1 "
        "validation accuracy, confusion matrix and t-SNE, P2 per-class IoU and masks at the "
        "snapshot epochs, a comparison of the runs with deltas, bars, curves and the same tiles "
        "predicted by each model, parameters and inference speed measured here, timings, "
        "hardware and provenance. HTML pages "
        "embed every image and need nothing else; Markdown reports put the images in "
        "<OUT stem>_files/ beside the .md file.",
    )
    p.add_argument("runs", nargs="+", metavar="RUN", help="run folders (the --out of 'fcnlab ... train')")
    p.add_argument("--out", required=True, help="file to write: report.html or report.md")
    p.add_argument(
        "--format",
        choices=("html", "md"),
        default=None,
        help="output format (default: from the --out suffix, html unless .md)",
    )
    p.add_argument("--title", help="page title (default: 'fcnlab report: RUN, ...')")
    p.add_argument(
        "--checkpoints",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="load each run's best.pt to count parameters, time inference on this machine and "
        "predict the same validation tiles with every P2 model (default: on)",
    )
    p.add_argument("--device", default="auto", help="device for those measurements (default: auto)")
    add_eval_name(p)
    p.add_argument(
        "--refresh",
        action="store_true",
        help="first re-run every evaluation and t-SNE made from an older best.pt than the run's "
        "current one (same data and options)",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Write the report; warnings (unreadable figures, which are left out) go to stderr."""
    from fcnlab.report import write_report

    if args.refresh:
        from fcnlab.cli.refresh import refresh_runs

        refresh_runs(args.runs, args.device)
    result = write_report(args.runs, args.out, args.format, args.title, args.checkpoints, args.device, args.eval_name)
    for warning in result.warnings:
        print(f"fcnlab: warning: {warning}", file=sys.stderr)
    extra = f" and {len(result.files)} image files in {result.files[0].parent}" if result.files else ""
    print(f"wrote {result.path} ({result.format}, {len(args.runs)} runs, {result.images} images){extra}")
    return 0
