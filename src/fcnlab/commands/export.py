"""``fcnlab export``: a checkpoint to ONNX (onnxruntime) or a ``torch.export`` program (``.pt2``).

The exported graph takes normalised float32 images ``(N, 3, H, W)`` (ImageNet mean/std, see
:func:`fcnlab.models.normalization`) and returns logits: ``(N, classes)`` for classifiers (batch dynamic,
H x W fixed to the run's ``image_size``), ``(N, classes, H, W)`` for FCNs (batch, height and width all
dynamic; any size works because the FCNs pad to a multiple of 32 and crop back). VGG classifiers whose
features are 1x1 at that size (P1's 32x32) are exported folded (:func:`fcnlab.models.fold_vgg_classifier`):
exact, 49x smaller first layer, and ONNX cannot express ``AdaptiveAvgPool2d((7, 7))`` on a 1x1 map.

After writing, the command runs the exported file once on a fresh input (another batch size and, for
FCNs, a size that is not a multiple of 32) and prints the largest difference from PyTorch.
"""

from __future__ import annotations

import argparse
import warnings
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.export import Dim

from fcnlab.errors import ConfigError
from fcnlab.runtime.files import atomic_path

FORMATS = ("onnx", "torch-export")
MIN_OPSET = 17
#: Example size for FCNs: only tracing uses it (height and width stay dynamic), so small is fast.
FCN_EXAMPLE_SIZE = (64, 64)


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``export`` sub-command."""
    p = sub.add_parser("export", help="export a checkpoint to ONNX or torch.export (.pt2)",
                       description="Export a trained checkpoint. Example: fcnlab export --ckpt runs/p2/best.pt "
                                   "--format onnx --out fcn8s.onnx")
    p.add_argument("--ckpt", required=True, help="checkpoint file or run folder")
    p.add_argument("--format", choices=FORMATS, default="onnx", help="onnx (default) or torch-export")
    p.add_argument("--out", required=True, help="file to write (.onnx or .pt2)")
    p.add_argument("--opset", type=int, default=MIN_OPSET, help=f"ONNX opset (>= {MIN_OPSET})")
    p.add_argument("--input-size", type=int, nargs=2, metavar=("H", "W"),
                   help="example input size (classifiers: the fixed input size; default: the run's image_size)")
    p.set_defaults(func=run)


def example_size(task: str, config: dict[str, Any], override: list[int] | None) -> tuple[int, int]:
    """Input size to trace with: ``--input-size``, else the run's ``image_size`` (classify) or 64x64 (FCN)."""
    if override is not None:
        h, w = override
        if h < 1 or w < 1:
            raise ConfigError(f"option --input-size: sides must be positive, got {h} {w}")
        if task == "segment" and (h % 32 or w % 32):
            raise ConfigError(f"option --input-size: FCN example sides must be multiples of 32, got {h} {w}")
        return h, w
    if task == "segment":
        return FCN_EXAMPLE_SIZE
    side = int(config.get("image_size") or 32)
    return side, side


def exportable_model(model: nn.Module, task: str, size: tuple[int, int]) -> nn.Module:
    """The eval-mode module to export: VGG classifiers with 1x1 features at ``size`` are folded."""
    model = model.eval()
    if task == "classify" and all(hasattr(model, a) for a in ("features", "avgpool", "classifier")):
        with torch.no_grad():
            fmap = model.features(torch.zeros(1, 3, *size))
        if tuple(fmap.shape[-2:]) == (1, 1):
            from fcnlab.models import fold_vgg_classifier

            return fold_vgg_classifier(model)
    return model


def _dynamic_dims(dynamic_hw: bool) -> dict[int, str]:
    return {0: "batch", 2: "height", 3: "width"} if dynamic_hw else {0: "batch"}


def export_onnx(model: nn.Module, example: torch.Tensor, out: str | Path, dynamic_hw: bool,
                opset: int = MIN_OPSET) -> None:
    """Write ``model`` as ONNX (input ``image``, output ``logits``), batch dynamic and H/W if ``dynamic_hw``.

    Uses torch's TorchScript-based exporter (``dynamo=False``): the dynamo exporter needs ``onnxscript``,
    which is not one of fcnlab's dependencies.
    """
    if opset < MIN_OPSET:
        raise ConfigError(f"option --opset: must be >= {MIN_OPSET}, got {opset}")
    dims = _dynamic_dims(dynamic_hw)
    with atomic_path(out) as tmp, warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore", DeprecationWarning)  # the TorchScript exporter is deprecated
        warnings.simplefilter("ignore", torch.jit.TracerWarning)  # shape branches are fixed on purpose
        try:
            torch.onnx.export(model, (example,), str(tmp), dynamo=False, opset_version=opset,
                              input_names=["image"], output_names=["logits"],
                              dynamic_axes={"image": dims, "logits": dims})
        except torch.onnx.errors.OnnxExporterError as e:
            size = "x".join(str(d) for d in example.shape[-2:])
            raise ConfigError(f"--out {out}: ONNX cannot express {type(model).__name__} at {size} "
                              f"({str(e).splitlines()[0][:160]}); use --format torch-export or another "
                              f"--input-size") from None


def export_program(model: nn.Module, example: torch.Tensor, out: str | Path, dynamic_hw: bool) -> None:
    """Write ``torch.export.export(model)`` with ``torch.export.save`` (batch, and H/W if ``dynamic_hw``)."""
    dims = {i: Dim.DYNAMIC for i in _dynamic_dims(dynamic_hw)}
    with torch.no_grad():
        program = torch.export.export(model, (example,), dynamic_shapes=(dims,))
    with atomic_path(out) as tmp:
        torch.export.save(program, tmp)


def run_onnx(path: str | Path, x: torch.Tensor) -> torch.Tensor:
    """Run an exported ONNX file with onnxruntime on CPU."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return torch.from_numpy(session.run(None, {"image": x.numpy()})[0])


def run_program(path: str | Path, x: torch.Tensor) -> torch.Tensor:
    """Load a ``.pt2`` program with ``torch.export.load`` and run it."""
    with torch.no_grad():
        return torch.export.load(str(path)).module()(x)


def check_input(task: str, size: tuple[int, int]) -> torch.Tensor:
    """A fresh input unlike the traced one: batch 1 and, for FCNs, sides that are not multiples of 32."""
    h, w = size
    if task == "segment":
        h, w = h + 16, w + 8
    return torch.randn(1, 3, h, w, generator=torch.Generator().manual_seed(0))


def run(args: argparse.Namespace) -> int:
    """Export ``--ckpt`` to ``--out`` and print the parity check."""
    from fcnlab.checkpoint import load_checkpoint, model_from_checkpoint
    from fcnlab.models import model_task

    ckpt_path, out = Path(args.ckpt), Path(args.out)
    if out.exists() and (out.is_dir() or (ckpt_path.exists() and out.resolve() == ckpt_path.resolve())):
        raise ConfigError(f"--out {out}: is a folder or the checkpoint itself; choose a new file name")
    ckpt = load_checkpoint(ckpt_path)
    task = model_task(ckpt["model_name"])
    size = example_size(task, ckpt.get("config") or {}, args.input_size)
    model = exportable_model(model_from_checkpoint(ckpt), task, size)
    example = torch.randn(2, 3, *size, generator=torch.Generator().manual_seed(1))
    dynamic_hw = task == "segment"
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
        print(f"check skipped: {e.name} is not installed (pip install 'fcnlab[export]')")
        return 0
    with torch.no_grad():
        want = model(x)
    print(f"check: max abs diff vs PyTorch on {tuple(x.shape)}: {(got - want).abs().max().item():.3g}")
    return 0
