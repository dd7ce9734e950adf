"""P1 batch augmentation speed on the CPU: fcnlab's vectorised policies vs torchvision applied per sample.

    python benchmarks/p1_augment_speed.py            # batch 256 of 32x32 uint8, one torch thread
    python benchmarks/p1_augment_speed.py --threads 2 --reps 10

Each variant is timed in process CPU time (the work done, steady on a shared machine), median of ``--reps``
calls after one warm-up, on random uint8 images. The per-sample baseline is what a DataLoader worker would
do: ``torchvision.transforms.v2.TrivialAugmentWide`` / ``RandAugment`` called on each image in a Python
loop. Random erasing is timed the same way against ``v2.RandomErasing`` per sample.
"""

from __future__ import annotations

import argparse

import torch
from torchvision.transforms import v2

from fcnlab.bench.timing import cpu_seconds
from fcnlab.data.batch_augment import AugmentPolicy, random_erasing


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--size", type=int, default=32)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    x = torch.randint(0, 256, (args.batch, 3, args.size, args.size), dtype=torch.uint8)
    gen = torch.Generator().manual_seed(0)
    mean = (124.0, 116.0, 104.0)
    xf = x.float()
    ta, ra = AugmentPolicy("trivialaugment"), AugmentPolicy("randaugment", num_ops=2, magnitude=9)
    v2_ta, v2_ra = v2.TrivialAugmentWide(), v2.RandAugment(num_ops=2, magnitude=9)
    v2_erase = v2.RandomErasing(p=0.5, value=0)
    cases = [
        ("TrivialAugmentWide", lambda: ta(x, gen), lambda: torch.stack([v2_ta(img) for img in x])),
        ("RandAugment(2, 9)", lambda: ra(x, gen), lambda: torch.stack([v2_ra(img) for img in x])),
        (
            "RandomErasing(0.5)",
            lambda: random_erasing(xf, 0.5, gen, mean),
            lambda: torch.stack([v2_erase(img) for img in xf]),
        ),
    ]
    print(
        f"batch {args.batch} of {args.size}x{args.size}, {args.threads} thread(s), median of {args.reps} "
        f"(process CPU time)"
    )
    print(f"{'policy':<22}{'vectorised img/s':>18}{'per-sample img/s':>18}{'speed-up':>10}")
    for name, vec, loop in cases:
        tv, tl = cpu_seconds(vec, args.reps), cpu_seconds(loop, args.reps)
        print(f"{name:<22}{args.batch / tv:>18.0f}{args.batch / tl:>18.0f}{tl / tv:>9.1f}x", flush=True)


if __name__ == "__main__":
    main()
