"""Command-line pieces shared by the sub-commands: number checks, common options (light: no torch)."""

from __future__ import annotations

import argparse

from fcnlab.errors import ConfigError


def at_least(value: int | None, minimum: int, option: str, why: str = "") -> int | None:
    """``value`` of command-line ``option`` when it is None (not given) or >= ``minimum``; else one ConfigError
    line, which the CLI prints with exit 2 as it does for bad data (argparse's own errors add a usage block)."""
    if value is not None and value < minimum:
        raise ConfigError(f"option {option}: must be >= {minimum}{why}, got {value}")
    return value


def add_eval_name(p: argparse.ArgumentParser) -> None:
    """``--eval NAME`` of ``compare`` and ``report``: which of a run's evaluations to show."""
    p.add_argument(
        "--eval",
        metavar="NAME",
        dest="eval_name",
        help="the evaluation to show: a folder name of RUN/eval (val10_tta-d4), the options of one on "
        "the run's validation data (tta-flip), or metrics.csv (default: RUN/eval/validation)",
    )
