"""``fcnlab recipes [--task classify|segment]``: the shipped recipes, their task, and what their numbers rest on."""

from __future__ import annotations

import argparse

LABELS = {"classify": "P1 (classify train)", "segment": "P2 (segment train)"}


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``recipes`` sub-command."""
    p = sub.add_parser(
        "recipes",
        help="list the shipped recipes (--config NAME): task, measured or estimated, time",
        description="List the recipes shipped with fcnlab, by task. 'measured' names the run folder "
        "of a finished run (docs/results/...) and its score; 'estimated' has not been "
        "run yet. Minutes are train + eval on the hardware named.",
    )
    p.add_argument("--task", choices=tuple(LABELS), default=None, help="only the recipes of this task")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Print the recipes grouped by task."""
    from fcnlab.recipes import describe, recipes_for

    infos = recipes_for(args.task)
    for task, label in LABELS.items():
        mine = [i for i in infos if i.task == task]
        if not mine:
            continue
        print(f"{label}:")
        for info in mine:
            print(f"  {describe(info)}")
            if info.summary:
                print(f"      {info.summary}")
    return 0
