"""The device, autocast precision and seeds of a run, and the environment stored beside it.

Used by training, inference and benchmarks alike (inference never imports training code for these).
"""

from __future__ import annotations

import os
import platform
import random
from typing import Any, cast

import numpy as np
import torch

from fcnlab.errors import ConfigError


def select_device(name: str, local_rank: int = 0) -> torch.device:
    """``auto`` -> CUDA (this process's GPU under torchrun) when present, else CPU."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ConfigError("option --device: CUDA was requested but no GPU is visible; use --device cpu")
        if name == "cuda":
            name = f"cuda:{local_rank}"
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ConfigError(f"option --device: {name!r} is not a device; use auto, cpu, cuda or cuda:N") from None
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        raise ConfigError(f"option --device: {name} does not exist ({torch.cuda.device_count()} GPU(s) visible)")
    return device


def cpu_computes_bf16() -> bool:
    """True when oneDNN runs bf16 convolutions natively on this CPU (AVX-512 or AMX; torch's own check).

    Without them (AVX2-only CPUs: AMD before Zen 4, most Intel laptop and desktop CPUs) bf16 is emulated: an
    ``fpn_lite`` training step was 15-22x slower than in fp32 (docs/BENCHMARKS.md, "CPUs without AVX-512").
    """
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):  # pragma: no cover - a torch build without oneDNN
        return False


def amp_dtype(mode: str, device: torch.device) -> torch.dtype | None:
    """Autocast dtype of the ``amp`` option ``mode``: bf16 on CUDA by default, none on CPU unless asked for.

    ``bf16`` on a CPU that does not compute it natively (:func:`cpu_computes_bf16`) runs in fp32: the laptop
    recipes ask for bf16 for speed, and there emulated bf16 is many times slower than fp32.
    """
    if mode == "auto":
        mode = "bf16" if device.type == "cuda" else "off"
    if mode == "bf16" and device.type == "cpu" and not cpu_computes_bf16():
        return None
    return {"bf16": torch.bfloat16, "fp16": torch.float16, "off": None}[mode]


def autocast(device: torch.device, dtype: torch.dtype | None) -> torch.autocast:
    """Autocast to ``dtype`` (from :func:`amp_dtype`) on ``device``; full precision when ``dtype`` is None."""
    return torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None)


def compile_model(model: torch.nn.Module, mode: str) -> torch.nn.Module:
    """``torch.compile(model)`` in ``mode`` (the ``compile_mode`` option: ``reduce-overhead`` replays CUDA graphs on a
    GPU; on the CPU every mode compiles with Inductor's C++ backend). The forward and backward passes of the
    training step are compiled (AOTAutograd); the loss, augmentation and the fused optimizer stay eager.

    Shapes are static (``dynamic=False``): training and evaluation fill their last batch to the size of the
    others (:func:`fcnlab.data.sampling.fill_last_batch`), so each mode (train, eval) compiles once, with
    kernels specialised to the batch, and ``reduce-overhead`` records one CUDA graph for each instead of one per
    new batch size."""
    return cast(torch.nn.Module, torch.compile(model, mode=None if mode == "default" else mode, dynamic=False))


def is_compiled(model: torch.nn.Module) -> bool:
    """True for a ``torch.compile`` wrapper (its calls should keep their shapes: see :func:`compile_model`)."""
    return hasattr(model, "_orig_mod")


def seed_everything(seed: int, deterministic: bool) -> None:
    """Seed python, numpy and torch; optionally force deterministic algorithms."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.benchmark = False
    elif torch.cuda.is_available():
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True


def environment() -> dict[str, Any]:
    """Hardware, library versions and provenance (fcnlab version, git commit, command line) for the report."""
    import torchvision

    from fcnlab.runtime.provenance import provenance

    env = {
        **provenance(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "platform": platform.platform(),
        "cpu": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "cuda": torch.cuda.is_available(),
    }
    if torch.cuda.is_available():
        env["gpu"] = torch.cuda.get_device_name(0)
        env["cuda_version"] = torch.version.cuda
    return env


def device_name(device: torch.device) -> str:
    """``cuda:0 (NVIDIA H100)`` or ``cpu``: the device a run used, for env.json and the report."""
    if device.type == "cuda":
        return f"{device} ({torch.cuda.get_device_name(device)})"
    return str(device)
