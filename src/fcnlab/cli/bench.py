"""``fcnlab bench``: measure training, inference, data path, evaluator and t-SNE speed on this device.

Without ``--out`` the JSON result goes to stdout and the Markdown table to stderr; with ``--out DIR`` both
are written to ``DIR/bench.json`` and ``DIR/bench.md`` and the table is printed. Progress goes to stderr.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from fcnlab.cli.arguments import at_least


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``bench`` sub-command."""
    from fcnlab.bench.sections import ALIASES, SECTIONS
    from fcnlab.config import CHOICES

    parser = subparsers.add_parser(
        "bench",
        help="measure training/inference/data/evaluator/t-SNE throughput on this device",
        description="Benchmark fcnlab on the current device: per model (P1 vgg16_bn at 32x32, "
        "fcn32s_vgg16 and fcn8s_resnet34 at 512x512) train and inference img/s, peak memory, "
        "GFLOP/s and MFU against the measured matmul peak; data-loader and end-to-end epoch "
        "img/s; evaluator speed and RSS against the course script; t-SNE seconds. Example: "
        "fcnlab bench --data ../shared/data/dlcv --out runs/bench",
    )
    parser.add_argument("--quick", action="store_true", help="tiny sizes (CI smoke run, about a minute on 2 cores)")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    parser.add_argument(
        "--data", type=Path, metavar="DLCV_ROOT", help="folder holding p1_data/ and p2_data/ (default: synthetic data)"
    )
    parser.add_argument("--out", type=Path, metavar="DIR", help="write DIR/bench.json and DIR/bench.md")
    parser.add_argument(
        "--only", metavar="NAME,...", help=f"sections to run: {', '.join(SECTIONS)} (aliases: {', '.join(ALIASES)})"
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=0,
        metavar="N",
        help="torch CPU threads (default: torch's own choice)",
    )
    parser.add_argument("--compile", action="store_true", help="torch.compile the models before timing")
    parser.add_argument(
        "--compile-mode",
        default="default",
        choices=CHOICES["compile_mode"],
        help="torch.compile mode with --compile (reduce-overhead: CUDA graphs)",
    )
    parser.set_defaults(func=run)


def command_line(args: argparse.Namespace) -> str:
    """The ``fcnlab bench ...`` command that reproduces this run (for the report)."""
    parts = ["fcnlab", "bench"]
    if args.quick:
        parts.append("--quick")
    if args.device != "auto":
        parts += ["--device", args.device]
    for flag, value in (("--data", args.data), ("--only", args.only), ("--out", args.out)):
        if value:
            parts += [flag, str(value)]
    if args.threads:
        parts += ["--threads", str(args.threads)]
    if args.compile:
        parts.append("--compile")
        if args.compile_mode != "default":
            parts += ["--compile-mode", args.compile_mode]
    return " ".join(parts)


def run(args: argparse.Namespace) -> int:
    """Run the benchmark and write/print its JSON and Markdown; exit 1 if a section failed."""
    at_least(args.threads, 0, "--threads")
    from fcnlab.bench.report import to_markdown, write_outputs
    from fcnlab.bench.run import BenchOptions, parse_only, run_bench
    from fcnlab.runtime.files import make_folder

    opts = BenchOptions(
        quick=args.quick,
        device=args.device,
        data=args.data,
        only=parse_only(args.only),
        threads=args.threads,
        compile=args.compile,
        compile_mode=args.compile_mode,
    )
    if args.out is not None:
        make_folder(args.out)  # before the run, not after minutes of measuring
    result = run_bench(opts)
    result["command"] = command_line(args)
    if args.out is not None:
        js, md = write_outputs(result, args.out)
        print(to_markdown(result))
        print(f"wrote {js} and {md}")
    else:
        print(to_markdown(result), file=sys.stderr)
        print(json.dumps(result, indent=2))
    return 1 if result["errors"] else 0
