"""Which CPU inference/training preparations pay off, per model: channels-last format and BatchNorm fusion.

The measurements behind :mod:`fcnlab.models.memory_format` (channels-last on the CPU only for inputs of 128 px or
more) and :mod:`fcnlab.infer.fusion` (BatchNorm folded into convolutions for inference)::

    python benchmarks/memory_format_cpu.py --out runs/memory_format

Each variant is timed in process CPU time with one torch thread (the work done, steady on a shared machine),
median of ``--reps`` calls after one warm-up, on random inputs of the course sizes: P1 ``vgg16_bn`` at 32x32
(train batch 128, inference 256), ``fcn8s_resnet34`` and ``fcn32s_vgg16`` at 512x512, batch 2.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

CASES = (  # (model, classes, side, train batch, inference batch)
    ("vgg16_bn", 50, 32, 128, 256),
    ("fcn8s_resnet34", 7, 512, 2, 2),
    ("fcn32s_vgg16", 7, 512, 2, 2),
)


def measure(name: str, classes: int, side: int, train_batch: int, infer_batch: int, reps: int) -> dict:
    """img/s of training (NCHW, NHWC) and inference (bare, fused, NHWC, fused + NHWC) of one model."""
    from fcnlab.bench.timing import cpu_seconds
    from fcnlab.infer.fusion import fuse_conv_bn
    from fcnlab.models import build_model

    gen = torch.Generator().manual_seed(0)
    row: dict[str, float] = {}
    for cl in (False, True):
        torch.manual_seed(0)
        model = build_model(name, classes).train()
        x = torch.randn(train_batch, 3, side, side, generator=gen)
        y = torch.randint(0, classes, (train_batch,) if side == 32 else (train_batch, side, side), generator=gen)
        if cl:
            model, x = model.to(memory_format=torch.channels_last), x.contiguous(memory_format=torch.channels_last)
        opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=1e-3, momentum=0.9)

        def step(model=model, x=x, y=y, opt=opt) -> None:
            loss = F.cross_entropy(model(x), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()

        row[f"train_{'nhwc' if cl else 'nchw'}"] = train_batch / cpu_seconds(step, reps)
        del model, opt
    torch.manual_seed(0)
    base = build_model(name, classes).eval()
    x = torch.randn(infer_batch, 3, side, side, generator=gen)
    for fused in (False, True):
        for cl in (False, True):
            model = fuse_conv_bn(base)[0] if fused else base
            xi = x
            if cl:
                model, xi = model.to(memory_format=torch.channels_last), x.contiguous(memory_format=torch.channels_last)

            def infer(model=model, xi=xi) -> None:
                with torch.inference_mode():
                    model(xi)

            row[f"infer_{'fused_' if fused else ''}{'nhwc' if cl else 'nchw'}"] = infer_batch / cpu_seconds(infer, reps)
            base = base.to(memory_format=torch.contiguous_format)
    return {
        "model": name,
        "input": f"3x{side}x{side}",
        "train_batch": train_batch,
        "infer_batch": infer_batch,
        **{k: round(v, 3) for k, v in row.items()},
    }


def to_markdown(rows: list[dict]) -> str:
    """Throughput and the gain of each variant over its plain NCHW baseline."""
    cols = ("train_nhwc", "infer_fused_nchw", "infer_nhwc", "infer_fused_nhwc")
    lines = [
        "| model | input | train NCHW img/s | train NHWC | infer bare NCHW img/s | infer fused | infer NHWC "
        "| infer fused + NHWC |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        gains = {c: r[c] / r["train_nchw" if c.startswith("train") else "infer_nchw"] for c in cols}
        lines.append(
            f"| {r['model']} | {r['input']} | {r['train_nchw']:.3f} | {gains['train_nhwc']:.2f}x | "
            f"{r['infer_nchw']:.3f} | {gains['infer_fused_nchw']:.2f}x | {gains['infer_nhwc']:.2f}x | "
            f"{gains['infer_fused_nhwc']:.2f}x |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reps", type=int, default=3, help="timed calls per variant (default 3)")
    parser.add_argument("--models", default=",".join(c[0] for c in CASES), help="comma-separated subset")
    parser.add_argument("--out", type=Path, help="folder for memory_format.json and memory_format.md")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    wanted = {m.strip() for m in args.models.split(",")}
    rows = []
    for case in CASES:
        if case[0] in wanted:
            rows.append(measure(*case, reps=args.reps))
            print(f"memory_format_cpu: {rows[-1]}", file=sys.stderr, flush=True)
    md = to_markdown(rows)
    print(md)
    if args.out is not None:
        from fcnlab.runtime.files import atomic_write_text

        atomic_write_text(
            args.out / "memory_format.json", json.dumps({"torch": torch.__version__, "rows": rows}, indent=2) + "\n"
        )
        atomic_write_text(args.out / "memory_format.md", md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
