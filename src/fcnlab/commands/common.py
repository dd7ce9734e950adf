"""Helpers shared by the sub-commands: argument groups, training entry, output-folder safety."""

from __future__ import annotations

import argparse
from pathlib import Path

from fcnlab import config
from fcnlab.errors import ConfigError


def add_train_parser(sub: argparse._SubParsersAction, task: str, example: str) -> argparse.ArgumentParser:
    """``<task> train``: ``--config``, ``--out``, ``--resume`` and one option per config key."""
    p = sub.add_parser("train", help=f"train a {task} model", description=f"Train a model. Example: {example}")
    p.add_argument("--out", help="run folder to create (refused if it already holds a run)")
    p.add_argument("--resume", metavar="RUN_DIR", help="continue the run in RUN_DIR from its last.pt")
    config.add_config_arguments(p)
    p.set_defaults(func=lambda args: run_train(args, task))
    return p


def run_train(args: argparse.Namespace, task: str) -> int:
    """Resolve the config and train (or resume)."""
    from fcnlab.engine import fit

    if args.resume:
        overrides = {name: getattr(args, f"cfg_{name}") for name in config.field_names()
                     if getattr(args, f"cfg_{name}", None) is not None}
        import yaml

        overrides = {k: yaml.safe_load(v) for k, v in overrides.items()}
        fit(None, args.resume, resume=True, overrides=overrides)
        return 0
    if not args.out:
        raise ConfigError("option --out: give the run folder to create (or --resume RUN_DIR)")
    cfg = config.resolve(args, task)
    fit(cfg, args.out)
    return 0


def check_output_dir(out: str | Path, inputs: list[str | Path]) -> Path:
    """Refuse an output folder that is one of the input folders (inputs are never overwritten)."""
    out = Path(out)
    for src in inputs:
        if src is not None and Path(src).exists() and out.exists() and out.resolve() == Path(src).resolve():
            raise ConfigError(f"--out {out}: is the input folder; choose another folder so inputs are never "
                              f"overwritten")
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out}: exists and is not a folder")
    out.mkdir(parents=True, exist_ok=True)
    return out


def add_device(p: argparse.ArgumentParser) -> None:
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    p.add_argument("--batch-size", type=int, default=0, help="images per batch (default: the run's eval size)")
    p.add_argument("--workers", type=int, default=2, help="decoding worker processes")


def positive_batch(args: argparse.Namespace, default: int) -> int:
    bs = args.batch_size or default
    if bs <= 0:
        raise ConfigError(f"option --batch-size: must be > 0, got {bs}")
    return bs
