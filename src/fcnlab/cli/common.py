"""Helpers shared by the sub-commands: argument groups, training entry, output safety.

Output rules: an output folder may not be an input folder, an output file may not
be an input file, and an image written by fcnlab never lands inside a folder it reads images from (the
next run would read it as data). Everything is written atomically (:mod:`fcnlab.runtime.files`).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from fcnlab.cli.arguments import at_least
from fcnlab.cli.options import HelpFormatter, add_config_arguments, overrides_from_args, resolve
from fcnlab.config import TrainConfig
from fcnlab.data.images import IMAGE_SUFFIXES, real_path
from fcnlab.errors import ConfigError
from fcnlab.runtime.files import make_folder
from fcnlab.runtime.launch import launched
from fcnlab.tasks import task_info


def add_train_parser(sub: argparse._SubParsersAction, task: str, example: str) -> argparse.ArgumentParser:
    """``<task> train``: ``--config``, ``--out``, ``--resume`` and one option per config key."""
    p = sub.add_parser(
        "train",
        help=f"train a {task} model",
        formatter_class=HelpFormatter,
        description=f"Train a model. Example:\n  {example}\n\nPrecedence: defaults < --config recipe "
        f"< options. Every option is a key of the recipe (--batch-size = batch_size).",
    )
    p.add_argument("--out", metavar="RUN_DIR", help="run folder to create (refused if it already holds a run)")
    p.add_argument(
        "--resume",
        metavar="RUN_DIR",
        help="continue the run in RUN_DIR from its last.pt (--epochs "
        "larger than trained extends it; options that would change "
        "finished epochs, e.g. --lr, are refused)",
    )
    p.add_argument(
        "--from",
        dest="resume_from",
        choices=("last", "best"),
        default="last",
        help="with --resume: continue from last.pt (default) or from best.pt (when last.pt is damaged; "
        "the epochs after the best one are trained again)",
    )
    p.add_argument(
        "--change-settings",
        action="store_true",
        help="with --resume: train the remaining epochs with other options (e.g. a lower --lr after a "
        "NaN loss); config.yaml takes them, config_until_epoch_N.yaml keeps the earlier ones",
    )
    p.add_argument(
        "--print-config",
        action="store_true",
        help="print the resolved config (defaults, recipe and options) as YAML and exit",
    )
    p.add_argument(
        "--procs",
        type=int,
        default=1,
        metavar="N",
        help="train with N processes on this machine joined by DDP (as torchrun --standalone --nproc_per_node N; "
        "--batch-size is per process); on the CPU each gets cores/N threads: on 2 cores, --procs 2 trained "
        "p2_laptop 1.3-1.5x faster than one process",
    )
    add_config_arguments(p, task)
    p.set_defaults(func=lambda args: run_train(args, task))
    return p


def run_train(args: argparse.Namespace, task: str) -> int:
    """Resolve the config once (a new run: defaults, recipe, options; a resumed one: its last.pt and the options
    given), then train: in this process, or with ``--procs N`` in N DDP processes."""
    from fcnlab.training.start import train_new, train_resumed

    if args.print_config:
        import yaml

        print(yaml.safe_dump(_config_of(args, task).to_dict(), sort_keys=False), end="")
        return 0
    _check_train_arguments(args)
    if (at_least(args.procs, 1, "--procs") or 1) > 1 and not launched():
        return _train_in_processes(args, task)
    if args.resume:
        train_resumed(
            args.resume,
            overrides_from_args(args),
            task=task,
            start=args.resume_from,
            change_settings=args.change_settings,
        )
    else:
        train_new(resolve(args, task), args.out)
    return 0


def _config_of(args: argparse.Namespace, task: str) -> TrainConfig:
    """The run's resolved config: with ``--resume``, its last.pt's and the options given; else defaults, recipe,
    options."""
    from fcnlab.training.fit import resume_config

    if args.resume:
        cfg, _ = resume_config(
            args.resume,
            overrides_from_args(args),
            task=task,
            start=args.resume_from,
            change_settings=args.change_settings,
        )
        return cfg
    return resolve(args, task)


def _check_train_arguments(args: argparse.Namespace) -> None:
    """Refuse ``train`` options that do not go together (one ConfigError line each)."""
    if args.resume:
        if args.out and real_path(args.out) != real_path(args.resume):
            raise ConfigError(
                f"--out {args.out} with --resume {args.resume}: a resumed run continues in its own folder; drop --out"
            )
        if getattr(args, "config", None):
            raise ConfigError(
                f"--config {args.config} with --resume: the run's config comes from its last.pt; "
                f"give single options (e.g. --epochs 60) to change it"
            )
        return
    if args.resume_from != "last":
        raise ConfigError(f"option --from {args.resume_from}: only with --resume RUN_DIR")
    if args.change_settings:
        raise ConfigError("option --change-settings: only with --resume RUN_DIR (a new run takes any options)")
    if not args.out:
        raise ConfigError("option --out: give the run folder to create (or --resume RUN_DIR)")


def _train_in_processes(args: argparse.Namespace, task: str) -> int:
    """``--procs N``: check the options and data folders here (one line, exit 2, before any process starts), then
    run this same command as N DDP processes (each sees ``RANK`` and trains; :mod:`fcnlab.runtime.launch`)."""
    import torch

    from fcnlab.runtime.device import select_device
    from fcnlab.runtime.launch import run_processes
    from fcnlab.runtime.provenance import command_args
    from fcnlab.training.preflight import check_options

    cfg = _config_of(args, task)
    check_options(cfg)
    if select_device(cfg.device).type == "cuda" and args.procs > torch.cuda.device_count():
        raise ConfigError(
            f"option --procs {args.procs}: one process per GPU, and {torch.cuda.device_count()} GPU(s) are "
            f"visible; use --procs {torch.cuda.device_count()} or --device cpu"
        )
    return run_processes(args.procs, command_args())


def check_output_dir(out: str | Path, inputs: list[str | Path]) -> Path:
    """Refuse an output folder that is an input folder or another data folder (it holds ``*_sat.*`` tiles,
    so its ``*_mask.png`` files are labels); create it. Other files in it are left alone."""
    out = Path(out)
    for src in inputs:
        if src is not None and Path(src).exists() and out.exists() and real_path(out) == real_path(src):
            raise ConfigError(
                f"--out {out}: is the input folder; choose another folder so inputs are never overwritten"
            )
    if out.is_dir() and next(out.glob("*_sat.*"), None) is not None:
        raise ConfigError(
            f"--out {out}: holds satellite tiles (*_sat.*), so it is a data folder whose label masks "
            f"predictions would replace; choose another folder"
        )
    return make_folder(out)


def check_output_file(out: str | Path, inputs: list[str | Path | None], option: str = "--out") -> Path:
    """Refuse an output file that is an input file, a folder, or an image inside an input image folder."""
    out = Path(out)
    if out.is_dir():
        raise ConfigError(f"{option} {out}: is a folder; give a file name inside it")
    target = real_path(out)
    for src in inputs:
        if src is None:
            continue
        src = real_path(src)
        if target == src:
            raise ConfigError(f"{option} {out}: is an input file; choose another name so inputs are never overwritten")
        if src.is_dir() and target.parent == src and target.suffix.lower() in IMAGE_SUFFIXES:
            raise ConfigError(
                f"{option} {out}: would put an image into the input folder {src}, which would then "
                f"be read as data; write it elsewhere"
            )
    return out


def add_device(p: argparse.ArgumentParser) -> None:
    """``--device``, ``--batch-size`` and ``--workers`` of the eval/predict commands (checked by positive_batch)."""
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    p.add_argument("--batch-size", type=int, default=None, help="images per batch (default: the run's eval size)")
    p.add_argument("--workers", type=int, default=2, help="decoding worker processes (0: decode in this process)")


def add_tta(p: argparse.ArgumentParser, task: str) -> None:
    """``--tta`` (and for segmentation ``--scales``): test-time augmentation of eval/predict commands."""
    if task == "segment":
        p.add_argument(
            "--tta",
            default="none",
            choices=task_info(task).tta_modes,
            help="average the softmax over the identity and the mirror (flip) or all 8 rotations and "
            "mirrors (d4); default none",
        )
        p.add_argument(
            "--scales",
            default=None,
            metavar="S1,S2,...",
            help="also average over these input scales, e.g. 0.75,1,1.25 (default: 1 only)",
        )
    else:
        p.add_argument(
            "--tta",
            default="none",
            choices=task_info(task).tta_modes,
            help="average the logits of the image and its mirror (flip), and also of the image shifted "
            "by one pixel up-left and down-right (flip-translate); default none",
        )


def tta_options(args: argparse.Namespace) -> dict[str, Any]:
    """``tta`` and ``scales`` keyword arguments for :func:`fcnlab.infer.predictor.load_predictor`."""
    from fcnlab.infer.tta import parse_scales

    return {"tta": args.tta, "scales": parse_scales(getattr(args, "scales", None))}


def positive_batch(args: argparse.Namespace, default: int) -> int:
    """The ``--batch-size`` given, else ``default``; also checks ``--workers``. Bad values: one ConfigError."""
    bs = args.batch_size if getattr(args, "batch_size", None) is not None else default
    at_least(bs, 1, "--batch-size")
    at_least(getattr(args, "workers", None), 0, "--workers", " (0 decodes in the main process)")
    return bs


def note(text: str, prefix: str = "note: ") -> None:
    """A note on stderr: stdout keeps exactly the printout the course (or the seed) expects."""
    print(f"{prefix}{text}", file=sys.stderr, flush=True)


def warn(text: str) -> None:
    """A warning on stderr, one line."""
    note(text, "fcnlab: warning: ")
