"""``fcnlab export``: a checkpoint to ONNX (onnxruntime), a ``torch.export`` program (``.pt2``) or its scored
weights alone (``--format weights``: a small ``.pt`` that every ``--ckpt`` and ``torch.load(weights_only=True)``
read).

The export itself is :mod:`fcnlab.infer.export`; this module parses the arguments, exports and prints the
parity check.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from fcnlab.errors import ConfigError
from fcnlab.infer.formats import FORMATS, MIN_OPSET
from fcnlab.tasks import task_info


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``export`` sub-command."""
    p = sub.add_parser(
        "export",
        help="export a checkpoint to ONNX, torch.export (.pt2) or its weights alone (.pt)",
        description="Export a trained checkpoint. Example: fcnlab export --ckpt runs/p2/best.pt "
        "--format onnx --out fcn8s.onnx",
    )
    p.add_argument("--ckpt", required=True, help="checkpoint file or run folder")
    p.add_argument(
        "--format",
        choices=(*FORMATS, WEIGHTS),
        default="onnx",
        help="onnx (default), torch-export, or weights: the weights the run was scored with (the EMA's "
        "when it kept one) as a plain dict whose 'model' is a state dict, far smaller than a "
        "resumable checkpoint, loading with torch.load(weights_only=True) and by --ckpt",
    )
    p.add_argument("--out", required=True, help="file to write (.onnx, .pt2 or .pt)")
    p.add_argument("--opset", type=int, default=MIN_OPSET, help=f"ONNX opset (>= {MIN_OPSET})")
    p.add_argument(
        "--input-size",
        type=int,
        nargs=2,
        metavar=("H", "W"),
        help="example input size (classifiers: the fixed input size; default: the run's image_size)",
    )
    p.set_defaults(func=run)


WEIGHTS = "weights"


def _file_size(path: Path) -> int:
    """Size of the checkpoint file (of a run folder: its best.pt or last.pt), 0 when unknown."""
    for p in (path, path / "best.pt", path / "last.pt"):
        if p.is_file():
            return p.stat().st_size
    return 0


def run(args: argparse.Namespace) -> int:
    """Export ``--ckpt`` to ``--out`` and print the parity check."""
    import torch

    from fcnlab.checkpoint import load_checkpoint, model_from_checkpoint
    from fcnlab.infer.export import (
        check_input,
        example_size,
        export_onnx,
        export_program,
        exportable_model,
        require_onnx,
        run_onnx,
        run_program,
    )
    from fcnlab.models import model_task
    from fcnlab.models.scaled import checkpoint_reduction, with_input_reduction

    ckpt_path, out = Path(args.ckpt), Path(args.out)
    if out.exists() and (out.is_dir() or (ckpt_path.exists() and out.resolve() == ckpt_path.resolve())):
        raise ConfigError(f"--out {out}: is a folder or the checkpoint itself; choose a new file name")
    if args.format == "onnx":
        require_onnx()  # before loading and tracing the model
    ckpt = load_checkpoint(ckpt_path)
    if args.format == WEIGHTS:
        from fcnlab.checkpoint import save_checkpoint
        from fcnlab.infer.export import scored_weights

        save_checkpoint(out, **scored_weights(ckpt, ckpt_path))
        written, before = out.stat().st_size, _file_size(ckpt_path)
        print(
            f"wrote {out} ({ckpt['model_name']} weights, {written / 2**20:.1f} MiB"
            + (f", from a {before / 2**20:.1f} MiB checkpoint)" if before else ")")
        )
        return 0
    task = model_task(ckpt["model_name"])
    size = example_size(task, ckpt.get("config") or {}, args.input_size)
    model = exportable_model(with_input_reduction(model_from_checkpoint(ckpt), checkpoint_reduction(ckpt)), task, size)
    example = torch.randn(2, 3, *size, generator=torch.Generator().manual_seed(1))
    dynamic_hw = task_info(task).dense
    if args.format == "onnx":
        export_onnx(model, example, out, dynamic_hw, args.opset)
        runner = run_onnx
    else:
        export_program(model, example, out, dynamic_hw)
        runner = run_program
    shape = "N x 3 x H x W" if dynamic_hw else f"N x 3 x {size[0]} x {size[1]}"
    print(f"wrote {out} ({args.format}, {ckpt['model_name']}, input {shape} normalised float32)")
    x = check_input(task, size)
    try:
        got = runner(out, x)
    except ImportError as e:
        print(f"check skipped: the optional package {e.name} is not installed (pip install 'fcnlab[export]')")
        return 0
    with torch.no_grad():
        want = model(x)
    print(f"check: max abs diff vs PyTorch on {tuple(x.shape)}: {(got - want).abs().max().item():.3g}")
    return 0
