"""Where the time of a ``p2_laptop`` training step goes on the CPU: the bare step, then each part the loop adds.

Times steps of 16 real tiles reduced to 128x128 (the decoded cache of ``--data``) with ``fpn_lite`` in fp32 or bf16,
channels-last: ``bare`` (forward, loss, backward, SGD step on one fixed batch), ``+data`` (a new batch gathered
each step), ``+augment`` (normalise and the D4 grid_sample of the recipe), ``+ema`` (the weights' average) and
``+metrics`` (the pixel accuracy count). Usage::

    OMP_NUM_THREADS=1 taskset -c 0 python benchmarks/p2_loop_parts.py --data $D/p2_data/train [--amp bf16]

Results: docs/BENCHMARKS.md ("CPUs without AVX-512").
"""

from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F

from fcnlab.data.segmentation import load_tile_set
from fcnlab.data.transforms import augment_pair, normalize
from fcnlab.models import build_model
from fcnlab.training.ema import ModelEma

PARTS = ("bare", "+data", "+augment", "+ema", "+metrics")


def images_per_second(data, parts: set[str], bf16: bool, steps: int, batch: int = 16) -> float:
    """Training images per second with the loop ``parts`` on, after 3 warm-up steps."""
    torch.manual_seed(0)
    model = build_model("fpn_lite", 7).to(memory_format=torch.channels_last)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, nesterov=True, fused=True)
    ema = ModelEma(model, 0.999, True) if "+ema" in parts else None
    gen = torch.Generator().manual_seed(0)
    order = torch.randperm(len(data), generator=gen)
    x0, y0 = data.batch(order[:batch])
    x0 = normalize(x0)
    for i in range(steps + 3):
        if i == 3:
            t0 = time.perf_counter()
        x, y = x0, y0
        if "+data" in parts:
            start = (i * batch) % (len(data) - batch)
            x, y = data.batch(order[start : start + batch])
            x = normalize(x)
        if "+augment" in parts:
            x, y = augment_pair(x, y, 128, gen, 1.0, 1.0)
        x = x.contiguous(memory_format=torch.channels_last)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            out = model(x)
        loss = F.cross_entropy(out.float(), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if ema is not None:
            ema.update(model)
        if "+metrics" in parts:
            with torch.no_grad():
                (out.detach().argmax(1) == y).sum().item()
    return steps * batch / (time.perf_counter() - t0)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="the P2 training folder (decoded once into the cache)")
    parser.add_argument("--amp", choices=("bf16", "off"), default="off")
    parser.add_argument("--steps", type=int, default=20)
    args = parser.parse_args()
    tiles = load_tile_set(args.data, input_size=128)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s), {len(tiles)} tiles, amp {args.amp}")
    on: set[str] = set()
    for part in PARTS:
        on.add(part)
        speed = images_per_second(tiles, on, args.amp == "bf16", args.steps)
        print(f"{' '.join(p for p in PARTS if p in on):40s} {speed:6.1f} img/s", flush=True)
