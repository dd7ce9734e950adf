"""``fcnlab miou``: the course's mean IoU of a folder of predicted masks against the label masks.

Prints exactly what the course's ``mean_iou_evaluate.py`` prints (``class #i : ...`` then
``mean_iou: ...``) on stdout; warnings (ignored predictions, off-palette red pixels, absent classes)
go to stderr, one line each. ``--json FILE`` also writes the numbers and the confusion matrix.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from fcnlab.cli.arguments import at_least
from fcnlab.runtime.files import atomic_write_text


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``miou`` sub-command."""
    parser = subparsers.add_parser(
        "miou",
        help="course-exact mean IoU of predicted masks against label masks",
        description="Compute the course's mean IoU (classes 0-5, over the whole set) of the predicted RGB "
        "masks in PRED_DIR against the label masks in GT_DIR, paired by file name "
        "(NNNN_mask.png in both folders).",
    )
    parser.add_argument(
        "--labels",
        "-g",
        required=True,
        type=Path,
        metavar="GT_DIR",
        help="folder of ground-truth masks (NNNN_mask.png; NNNN_sat.jpg files are skipped)",
    )
    parser.add_argument(
        "--pred",
        "-p",
        required=True,
        type=Path,
        metavar="PRED_DIR",
        help="folder of predicted masks, named like the labels",
    )
    parser.add_argument("--json", type=Path, metavar="FILE", help="also write the result as JSON to FILE")
    parser.add_argument(
        "--workers",
        type=int,
        default=None,
        metavar="N",
        help="decoding threads (default: CPU cores, at most 4)",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Evaluate, print the course's lines and write the optional JSON file; return the exit code."""
    at_least(args.workers, 1, "--workers")
    from fcnlab.evaluate.mask_folders import evaluate_masks
    from fcnlab.tasks.metrics import format_course_lines

    result = evaluate_masks(args.labels, args.pred, workers=args.workers)
    for line in result.warnings:
        print(f"fcnlab: warning: {line}", file=sys.stderr)
    print(format_course_lines(result))
    if args.json is not None:
        payload = result.to_dict() | {"labels": str(args.labels), "pred": str(args.pred)}
        atomic_write_text(args.json, json.dumps(payload, indent=2) + "\n")
    return 0
