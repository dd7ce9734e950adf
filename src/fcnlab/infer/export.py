"""Export a model to ONNX (onnxruntime) or a ``torch.export`` program (``.pt2``), for ``fcnlab export``.

The exported graph takes normalised float32 images ``(N, 3, H, W)`` (ImageNet mean/std, see
:func:`fcnlab.models.normalization`) and returns logits: ``(N, classes)`` for classifiers (batch dynamic,
H x W fixed to the run's ``image_size``), ``(N, classes, H, W)`` for FCNs (batch, height and width all
dynamic; any size works because the FCNs pad to a multiple of 32 and crop back). VGG classifiers whose
features are 1x1 at that size (P1's 32x32) are exported folded (:func:`fcnlab.infer.folding.fold_vgg_classifier`):
exact, 49x smaller first layer, and ONNX cannot express ``AdaptiveAvgPool2d((7, 7))`` on a 1x1 map.

After writing, ``fcnlab export`` runs the exported file once on :func:`check_input` (another batch size and,
for FCNs, a size that is not a multiple of 32) and prints the largest difference from PyTorch.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.export import Dim

from fcnlab.errors import ConfigError
from fcnlab.infer.formats import FCN_EXAMPLE_SIZE, FORMATS, MIN_OPSET  # noqa: E402,F401 - re-exported
from fcnlab.runtime.files import atomic_path
from fcnlab.tasks import task_info


def example_size(task: str, config: dict[str, Any], override: list[int] | None) -> tuple[int, int]:
    """Input size to trace with: ``--input-size``, else the run's ``image_size`` (classify) or 64x64 (FCN)."""
    if override is not None:
        h, w = override
        if h < 1 or w < 1:
            raise ConfigError(f"option --input-size: sides must be positive, got {h} {w}")
        if task_info(task).dense and (h % 32 or w % 32):
            raise ConfigError(f"option --input-size: FCN example sides must be multiples of 32, got {h} {w}")
        return h, w
    if task_info(task).dense:
        return FCN_EXAMPLE_SIZE
    side = int(config.get("image_size") or 32)
    return side, side


def exportable_model(model: nn.Module, task: str, size: tuple[int, int]) -> nn.Module:
    """The eval-mode module to export: VGG classifiers with 1x1 features at ``size`` are folded."""
    model = model.eval()
    if not task_info(task).dense and all(hasattr(model, a) for a in ("features", "avgpool", "classifier")):
        with torch.no_grad():
            fmap = model.features(torch.zeros(1, 3, *size))  # type: ignore[operator]
        if tuple(fmap.shape[-2:]) == (1, 1):
            from fcnlab.infer.folding import fold_vgg_classifier

            return fold_vgg_classifier(model)
    return model


def _dynamic_dims(dynamic_hw: bool) -> dict[int, str]:
    return {0: "batch", 2: "height", 3: "width"} if dynamic_hw else {0: "batch"}


def require_onnx() -> None:
    """Refuse ``--format onnx`` without the optional ``onnx`` package, naming it and the extra that installs
    it (torch's exporter would fail only after tracing, in words that blame the model)."""
    try:
        import onnx  # noqa: F401
    except ImportError:
        raise ConfigError(
            "--format onnx: needs the optional package onnx, which is not installed; pip install "
            "'fcnlab[export]' (or use --format torch-export)"
        ) from None


def export_onnx(
    model: nn.Module, example: torch.Tensor, out: str | Path, dynamic_hw: bool, opset: int = MIN_OPSET
) -> None:
    """Write ``model`` as ONNX (input ``image``, output ``logits``), batch dynamic and H/W if ``dynamic_hw``.

    Uses torch's TorchScript-based exporter (``dynamo=False``): the dynamo exporter needs ``onnxscript``,
    which is not one of fcnlab's dependencies.
    """
    if opset < MIN_OPSET:
        raise ConfigError(f"option --opset: must be >= {MIN_OPSET}, got {opset}")
    require_onnx()
    dims = _dynamic_dims(dynamic_hw)
    with atomic_path(out) as tmp, warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore", DeprecationWarning)  # the TorchScript exporter is deprecated
        warnings.simplefilter("ignore", torch.jit.TracerWarning)  # shape branches are fixed on purpose
        try:
            torch.onnx.export(
                model,
                (example,),
                str(tmp),
                dynamo=False,
                opset_version=opset,
                input_names=["image"],
                output_names=["logits"],
                dynamic_axes={"image": dims, "logits": dims},
            )
        except torch.onnx.errors.OnnxExporterError as e:
            size = "x".join(str(d) for d in example.shape[-2:])
            raise ConfigError(
                f"--out {out}: ONNX cannot express {type(model).__name__} at {size} "
                f"({str(e).splitlines()[0][:160]}); use --format torch-export or another "
                f"--input-size"
            ) from None


def export_program(model: nn.Module, example: torch.Tensor, out: str | Path, dynamic_hw: bool) -> None:
    """Write ``torch.export.export(model)`` with ``torch.export.save`` (batch, and H/W if ``dynamic_hw``)."""
    dims = {i: Dim.DYNAMIC for i in _dynamic_dims(dynamic_hw)}
    with torch.no_grad():
        program = torch.export.export(model, (example,), dynamic_shapes=(dims,))
    with atomic_path(out) as tmp:
        torch.export.save(program, tmp)


def scored_weights(ckpt: dict[str, Any], source: str | Path) -> dict[str, Any]:
    """The checkpoint ``ckpt`` (read from ``source``) reduced to the weights it was scored with (the EMA's when
    the run kept one): a plain dict whose ``model`` is a plain state dict, loading with ``weights_only=True``
    and by every ``--ckpt``, without the optimizer, EMA copy, RNG states and history that make a resumable
    checkpoint large; it cannot be resumed."""
    from fcnlab.checkpoint import inference_weights, scores_ema

    config = {**(ckpt.get("config") or {}), "ema": False}  # ``model`` already holds the EMA's weights
    keep = ("task", "model_name", "num_classes", "epoch", "best_epoch", "best_metric", "metrics")
    return {
        **{k: ckpt[k] for k in keep if k in ckpt},
        "model": inference_weights(ckpt),
        "config": config,
        "optimizer": None,
        "scheduler": None,
        "scaler": None,
        "weights": "ema" if scores_ema(ckpt) else "raw",
        "exported_from": str(Path(source).resolve()),
    }


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
    if task_info(task).dense:
        h, w = h + 16, w + 8
    return torch.randn(1, 3, h, w, generator=torch.Generator().manual_seed(0))
