"""``fcnlab reproduce --data DLCV --out DIR``: the homework end to end with one profile's recipes
(:mod:`fcnlab.reproduce`)."""

from __future__ import annotations

import argparse

from fcnlab.cli.options import HelpFormatter

PROFILE_HELP = {"laptop": "a CPU, no downloads", "gpu": "one NVIDIA GPU"}


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``reproduce`` sub-command."""
    from fcnlab.reproduce.plan import PROFILES

    lines = [
        f"  {name:<7} {PROFILE_HELP[name]}: P1 {', '.join(p.p1)}; P2 {', '.join(p.p2)}"
        + (f" (--scratch adds {', '.join(p.scratch)})" if p.scratch else "")
        for name, p in PROFILES.items()
    ]
    p = sub.add_parser(
        "reproduce",
        formatter_class=HelpFormatter,
        help="run the whole homework on the course data: train, eval, t-SNE, masks, comparison, report.html",
        description="Train every recipe of the profile on the course data, then evaluate each run (the course's "
        "printout), draw P1's t-SNE, write P2's predicted masks (and masks at an early, a middle and "
        "the final epoch), compare the P2 runs and write OUT/report.html. It prints the time it "
        "expects first and a summary with the report's path last. Interrupted, the same command "
        "continues: finished steps are skipped and a cut training run resumes from its last.pt.\n\n"
        "Profiles:\n" + "\n".join(lines),
    )
    p.add_argument("--data", required=True, metavar="DLCV", help="the course's dlcv folder (p1_data/, p2_data/)")
    p.add_argument(
        "--out", required=True, metavar="DIR", help="output folder: runs/<recipe>/, compare.md, report.html, summary.md"
    )
    p.add_argument("--profile", choices=tuple(PROFILE_HELP), default="laptop", help="which recipes (default laptop)")
    p.add_argument(
        "--pretrained",
        dest="pretrained",
        action="store_true",
        default=None,
        help="start every run from ImageNet weights (downloads them once)",
    )
    p.add_argument(
        "--no-pretrained",
        dest="pretrained",
        action="store_false",
        default=None,
        help="train every run from scratch (offline; default: as each recipe says)",
    )
    p.add_argument("--only", metavar="PARTS", help="p1, p2 or p1,p2 (default: both)")
    p.add_argument(
        "--budget",
        type=float,
        metavar="MIN",
        help="minutes for the whole command; runs that do not fit are cut (they resume on the next "
        "call). Default: no limit, every run trains its full schedule",
    )
    p.add_argument("--scratch", action="store_true", help="also run the profile's from-scratch recipes")
    p.add_argument(
        "--recipes", metavar="R1,R2", help="run these recipes (names or YAML files) instead of the profile's"
    )
    p.add_argument(
        "--set",
        dest="settings",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a training option for every run, e.g. --set epochs=5 (repeatable)",
    )
    p.add_argument("--skip", metavar="STEPS", help="leave out steps: eval, tsne, masks, compare, report")
    p.add_argument("--device", default=None, help="auto, cpu, cuda or cuda:N (default: each recipe's, auto)")
    p.add_argument(
        "--procs",
        type=int,
        metavar="N",
        help="training processes of each run, the recipe's batch split among them (default: 2 with the laptop "
        "profile on a CPU of 2+ cores, else 1)",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run the plan; a failed step stops it with that step's exit code."""
    from pathlib import Path

    from fcnlab.errors import ConfigError
    from fcnlab.reproduce.plan import PROFILES, STEPS
    from fcnlab.reproduce.run import Options, reproduce

    skip = tuple(s.strip() for s in (args.skip or "").split(",") if s.strip())
    bad = [s for s in skip if s not in STEPS or s == "train"]
    if bad:
        raise ConfigError(
            f"option --skip: {', '.join(bad)} is not a step to leave out; choose from "
            f"{', '.join(s for s in STEPS if s != 'train')}"
        )
    recipes = [r.strip() for r in args.recipes.split(",") if r.strip()] if args.recipes else None
    reproduce(
        Options(
            data=Path(args.data),
            out=Path(args.out),
            profile=PROFILES[args.profile],
            only=args.only,
            pretrained=args.pretrained,
            budget_minutes=args.budget,
            device=args.device,
            scratch=args.scratch,
            recipes=recipes,
            settings=args.settings,
            skip=skip,
            debug=args.debug,
            procs=args.procs,
        )
    )
    return 0
