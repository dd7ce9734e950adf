"""Training speed of the laptop segmentation models on one CPU thread (bf16 autocast, channels-last).

One SGD step on a batch of 16 random 128x128 tiles (the laptop recipes' input), after 3 warm-up steps, timed
over 10 steps of wall time. Usage: ``OMP_NUM_THREADS=1 taskset -c 0 python benchmarks/p2_laptop_models_speed.py
[--amp bf16|off|both] [--model NAME ...] [--batch N] [--side PX]`` (default bf16: what the recipes ask for;
``both`` also times fp32, which is what ``amp: bf16`` runs in on a CPU without AVX-512/AMX).
Results: docs/BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import torch
import torch.nn.functional as F

from fcnlab.models import build_model

VARIANTS: list[tuple[str, dict[str, Any]]] = [
    ("fpn_lite", {}),
    ("fpn_lite", {"blocks": (1, 1, 1, 1, 1)}),
    ("fpn_lite", {"blocks": (0, 1, 1, 1, 0)}),
    ("fpn_lite16", {}),
    ("fpn_lite16", {"blocks": (0, 1, 1, 2)}),
    ("fpn_lite16", {"blocks": (0, 1, 2, 2)}),
    ("fpn_lite16", {"widths": (32, 32, 64, 160, 320)}),
    ("fpn_lite16", {"widths": (32, 32, 96, 192, 320)}),
    ("fpn_lite16", {"decoder": 96}),
    ("fpn_lite16_s2", {}),
    ("fcn8s_lite", {}),
    ("fcn32s_lite", {}),
]


def images_per_second(name: str, batch: int = 16, side: int = 128, bf16: bool = True, **kwargs) -> float:
    """Training images per second of ``name`` (one step = forward, loss, backward, optimizer step)."""
    torch.manual_seed(0)
    model = build_model(name, 7, **kwargs).to(memory_format=torch.channels_last)
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.01, momentum=0.9, nesterov=True)
    x = torch.randn(batch, 3, side, side).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 7, (batch, side, side))
    for i in range(13):
        if i == 3:
            t0 = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            out = model(x)
        loss = F.cross_entropy(out.float(), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return 10 * batch / (time.perf_counter() - t0)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--amp", choices=("bf16", "off", "both"), default="bf16")
    parser.add_argument("--model", nargs="*", help="time only these models (default: every variant)")
    parser.add_argument("--batch", type=int, default=16, help="tiles per step (8: each process of --procs 2)")
    parser.add_argument("--side", type=int, default=128, help="tile side in pixels (the recipes' --input-size)")
    args = parser.parse_args()
    amps = {"bf16": [True], "off": [False], "both": [True, False]}[args.amp]
    native = torch.ops.mkldnn._is_mkldnn_bf16_supported()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s), native bf16: {native}")
    for name, kwargs in VARIANTS:
        if args.model and name not in args.model:
            continue
        params = sum(p.numel() for p in build_model(name, 7, **kwargs).parameters())
        for bf16 in amps:
            rate = images_per_second(name, args.batch, args.side, bf16, **kwargs)
            print(
                f"{name:12s} {str(kwargs or 'default'):30s} {params / 1e6:4.1f}M params  "
                f"{'bf16' if bf16 else 'fp32'} {rate:6.1f} img/s",
                flush=True,
            )
