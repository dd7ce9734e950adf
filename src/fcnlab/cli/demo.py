"""``fcnlab demo [--out DIR] [--quick]``: the homework in miniature on synthetic data (:mod:`fcnlab.demo`)."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``demo`` sub-command."""
    p = sub.add_parser(
        "demo",
        help="train, evaluate and compare small models on synthetic data (CPU, about 1.5 minutes)",
        description="Generate small synthetic data sets in the course formats inside DIR and run every step "
        "of the homework on them through the real commands: P1 classify train/eval/predict/tsne, "
        "P2 segment train/eval/predict of an FCN-32s and an FCN-8s with mask snapshots, miou, "
        "compare and report. DIR must be new, empty or an earlier demo folder.",
    )
    p.add_argument("--out", default="runs/demo", metavar="DIR", help="output folder (default: runs/demo)")
    p.add_argument(
        "--quick", action="store_true", help="a seconds-long smoke test of every step (too small to learn much)"
    )
    p.add_argument("--device", default="cpu", help="cpu (default), auto, cuda or cuda:N")
    p.add_argument(
        "--threads",
        type=int,
        default=1,
        metavar="N",
        help="PyTorch CPU threads (default 1: predictable on a busy machine; 0: one per core)",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run the demo; its steps' errors stop it with their exit code."""
    from fcnlab.demo import FULL, QUICK, run_demo

    plan = QUICK if args.quick else FULL
    run_demo(args.out, plan, device=args.device, threads=args.threads, debug=args.debug)
    return 0
