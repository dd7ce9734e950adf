"""Search for the P1 laptop recipe: train candidate recipes on the real data on the CPU, one per call.

The record of how ``configs/p1_laptop.yaml`` was chosen (results in docs/ENGINEERING.md, "P1 laptop recipe
search"). It reuses fcnlab's data path (decoded uint8 arrays from the disk cache, the batch crop/flip and
normalisation, the warm-up + cosine LR factor) and trains a candidate directly, so that variants the CLI
does not expose yet (whitened stem, progressive crop size) can be compared at equal budgets.

Each candidate is a name in ``CANDIDATES`` plus ``key=value`` overrides; the script prints one JSON line per
run with the validation accuracy of the raw and the EMA weights, each with and without flip TTA, the wall
time, the process CPU time and ``est_min`` (CPU seconds / threads / 60: the wall minutes on an idle machine,
for comparing candidates while other processes share the CPU).

    PYTHONPATH=src nice -n 10 python benchmarks/p1_laptop_search.py calib epochs=6 --out /tmp/search.jsonl
    PYTHONPATH=src python benchmarks/p1_laptop_search.py --bench calib wide64  # training img/s, fp32/bf16
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from fcnlab.data.classification import load_image_set
from fcnlab.data.transforms import normalize, random_crop_flip
from fcnlab.models import build_model, trainable_param_groups

DATA = "/work/shared/data/dlcv/p1_data"

# The calibration network (32/128/128 residual pairs, GELU, batch 256, SGD Nesterov,
# label smoothing 0.2, flip + 2-px translation) and the variants compared against it.
BASE: dict[str, Any] = dict(
    model="airnet",
    arch=dict(widths=(32, 128, 128), stem=24, pairs=(1, 1, 1)),
    epochs=18,
    batch=256,
    lr=0.2,
    wd=5e-4,
    momentum=0.9,
    warmup=2.0,
    smoothing=0.2,
    pad=2,
    cutout=0,
    ema=0.0,
    amp=True,
    channels_last=True,
    whiten=False,
    small_epochs=0,
    small_size=24,
    eval_every=0,
)
CANDIDATES: dict[str, dict[str, Any]] = {
    "calib": {},
    "calib_ema": dict(ema=0.99),
    "calib_whiten": dict(whiten=True, ema=0.99),
    "wide64": dict(arch=dict(widths=(64, 256, 256), stem=32, pairs=(0, 0, 0)), ema=0.99),
    "wide64r": dict(arch=dict(widths=(64, 256, 256), stem=32, pairs=(1, 0, 1)), ema=0.99),
    "wide128r": dict(arch=dict(widths=(128, 256, 512), stem=32, pairs=(0, 1, 0)), ema=0.99),
    "wide64p": dict(arch=dict(widths=(64, 256, 256), stem=32, pairs=(0, 1, 1)), ema=0.99),
    "wide96p": dict(arch=dict(widths=(96, 192, 384), stem=32, pairs=(0, 1, 1)), ema=0.99),
    "mid": dict(arch=dict(widths=(64, 128, 256), stem=32, pairs=(1, 0, 1)), ema=0.99),
    "resnet9": dict(arch=dict(widths=(128, 256, 512), stem=64, pairs=(1, 0, 1)), ema=0.99),
}


def whiten_stem(model: nn.Module, images: torch.Tensor, eps: float = 5e-4) -> None:
    """Initialise ``model.stem[0]`` (3x3 conv) with the data's whitened patch directions, +/- each (airbench)."""
    conv = model.get_submodule("stem.0")
    assert isinstance(conv, nn.Conv2d)
    k = conv.out_channels // 2
    patches = F.unfold(images, conv.kernel_size).transpose(1, 2).reshape(-1, conv.in_channels * 9).double()
    patches = patches - patches.mean(0)
    eigval, eigvec = torch.linalg.eigh(patches.T @ patches / len(patches))
    top = eigvec[:, -k:].T / (eigval[-k:, None] + eps).sqrt()  # the k strongest directions, unit variance
    w = torch.cat([top, -top]).float().view(2 * k, conv.in_channels, *conv.kernel_size)
    with torch.no_grad():
        conv.weight.zero_()
        conv.weight[: 2 * k] = w


def lr_at(step: int, total: int, warm: int) -> float:
    """Linear warm-up to 1, then cosine to 0 (fcnlab's ``scheduler: cosine`` with ``warmup_epochs``)."""
    if step < warm:
        return (step + 1) / warm
    return 0.5 * (1.0 + math.cos(math.pi * min(step - warm, total - warm) / max(total - warm, 1)))


@torch.no_grad()
def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor, amp: bool, cl: bool) -> tuple[float, float]:
    """Accuracy without and with flip TTA (mean of the logits of the image and its mirror)."""
    model.eval()
    hit, hit_tta = 0, 0
    for i in range(0, len(x), 500):
        xb = normalize(x[i : i + 500])
        if cl:
            xb = xb.contiguous(memory_format=torch.channels_last)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=amp):
            a = model(xb).float()
            b = model(xb.flip(-1)).float()
        hit += (a.argmax(1) == y[i : i + 500]).sum().item()
        hit_tta += ((a + b).argmax(1) == y[i : i + 500]).sum().item()
    return hit / len(x), hit_tta / len(x)


def cutout(images: torch.Tensor, size: int, gen: torch.Generator) -> torch.Tensor:
    """Zero one ``size`` x ``size`` square per image at a random centre (may be clipped by the border)."""
    b, _, h, w = images.shape
    cy = torch.randint(0, h, (b, 1, 1), generator=gen)
    cx = torch.randint(0, w, (b, 1, 1), generator=gen)
    ys, xs = torch.arange(h).view(1, h, 1), torch.arange(w).view(1, 1, w)
    hole = ((ys - cy).abs() <= size // 2) & ((xs - cx).abs() <= size // 2)
    return images * (~hole)[:, None].to(images.dtype)


def run(name: str, cfg: dict[str, Any], data: tuple[torch.Tensor, ...]) -> dict[str, Any]:
    """Train one candidate; return its accuracies and timings."""
    xtr, ytr, xva, yva = data
    torch.manual_seed(cfg.get("seed", 0))
    gen = torch.Generator().manual_seed(cfg.get("seed", 0))
    model = build_model(cfg["model"], 50, **cfg["arch"])
    if cfg["whiten"]:
        whiten_stem(model, normalize(xtr[:5000]))
        model.get_submodule("stem.0").weight.requires_grad_(False)
    cl = cfg["channels_last"]
    if cl:
        model = model.to(memory_format=torch.channels_last)
    groups = trainable_param_groups(model, lr=cfg["lr"], weight_decay=cfg["wd"])
    opt = torch.optim.SGD(groups, lr=cfg["lr"], momentum=cfg["momentum"], nesterov=True)
    ema = None
    if cfg["ema"]:
        decay = cfg["ema"]
        ema = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(decay), use_buffers=True)
    n, bs = len(xtr), cfg["batch"]
    steps_per_epoch = n // bs
    total = cfg["epochs"] * steps_per_epoch
    warm = int(cfg["warmup"] * steps_per_epoch)
    t0, c0 = time.time(), time.process_time()
    step, curve = 0, []
    for epoch in range(cfg["epochs"]):
        model.train()
        order = torch.randperm(n, generator=gen)[: steps_per_epoch * bs].view(steps_per_epoch, bs)
        size = cfg["small_size"] if epoch < cfg["small_epochs"] else 32
        for idx in order:
            x = random_crop_flip(xtr[idx], cfg["pad"], gen)
            if size != 32:  # progressive size: a random size x size crop of the translated image
                o = torch.randint(0, 32 - size + 1, (2,), generator=gen).tolist()
                x = x[:, :, o[0] : o[0] + size, o[1] : o[1] + size]
            x = normalize(x)
            if cfg["cutout"]:
                x = cutout(x, cfg["cutout"], gen)
            if cl:
                x = x.contiguous(memory_format=torch.channels_last)
            for g in opt.param_groups:
                g["lr"] = cfg["lr"] * lr_at(step, total, warm)
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=cfg["amp"]):
                loss = F.cross_entropy(model(x).float(), ytr[idx], label_smoothing=cfg["smoothing"])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if ema is not None:
                ema.update_parameters(model)
            step += 1
        if cfg["eval_every"] and (epoch + 1) % cfg["eval_every"] == 0 and epoch + 1 < cfg["epochs"]:
            curve.append((epoch + 1, *evaluate(model, xva, yva, cfg["amp"], cl)))
            print(
                f"{name}: epoch {epoch + 1} val acc {curve[-1][1]:.4f} (flip TTA {curve[-1][2]:.4f})",
                file=sys.stderr,
                flush=True,
            )
        print(
            f"{name}: epoch {epoch + 1}/{cfg['epochs']} loss {loss.item():.3f} {time.time() - t0:.0f}s wall",
            file=sys.stderr,
            flush=True,
        )
    train_cpu = time.process_time() - c0
    acc, acc_tta = evaluate(model, xva, yva, cfg["amp"], cl)
    row = dict(name=name, acc=acc, acc_tta=acc_tta, curve=curve)
    if ema is not None:
        row["ema_acc"], row["ema_acc_tta"] = evaluate(ema.module, xva, yva, cfg["amp"], cl)
    threads = torch.get_num_threads()
    row.update(
        wall_s=round(time.time() - t0, 1),
        train_cpu_s=round(train_cpu, 1),
        est_min=round(train_cpu / threads / 60, 2),
        threads=threads,
        img_per_s_est=round(total * bs / (train_cpu / threads), 1),
        params=sum(p.numel() for p in model.parameters()),
        config={k: v for k, v in cfg.items()},
    )
    return row


def _train_step(model: nn.Module, opt: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor, amp: bool) -> None:
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=amp):
        loss = F.cross_entropy(model(x).float(), y, label_smoothing=0.2)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()


def bench(cases: list[tuple[str, dict[str, Any]]], steps: int = 8) -> None:
    """Training img/s per case: median process-CPU time per step (robust to other processes) and best wall."""
    for label, over in cases:
        cfg = {**BASE, **over}
        model = build_model(cfg["model"], 50, **cfg["arch"])
        cl, amp, bs = cfg["channels_last"], cfg["amp"], cfg["batch"]
        if cl:
            model = model.to(memory_format=torch.channels_last)
        opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, nesterov=True)
        f: Any = torch.compile(model) if cfg.get("compile") else model
        x, y = torch.randn(bs, 3, 32, 32), torch.randint(0, 50, (bs,))
        if cl:
            x = x.contiguous(memory_format=torch.channels_last)

        for _ in range(2):
            _train_step(f, opt, x, y, amp)
        cpu, wall = [], []
        for _ in range(steps):
            t, c = time.time(), time.process_time()
            _train_step(f, opt, x, y, amp)
            cpu.append(time.process_time() - c)
            wall.append(time.time() - t)
        est = bs * torch.get_num_threads() / statistics.median(cpu)  # CPU time: what other processes took is not in it
        print(
            json.dumps(
                dict(
                    case=label,
                    batch=bs,
                    amp=amp,
                    channels_last=cl,
                    compile=bool(cfg.get("compile")),
                    img_per_s_cpu_est=round(est),
                    img_per_s_best_wall=round(bs / min(wall)),
                )
            ),
            flush=True,
        )


def eval_run(run: Path) -> None:
    """Accuracy of a run's best.pt and last.pt on val_50, without and with flip TTA (one JSON line each)."""
    from fcnlab.checkpoint import load_checkpoint, model_from_checkpoint
    from fcnlab.config import from_dict
    from fcnlab.models.memory_format import use_channels_last

    va = load_image_set(f"{DATA}/val_50", csv_path=f"{DATA}/val_gt.csv", cache="disk")
    x = torch.from_numpy(va.images[:])
    for name in ("best.pt", "last.pt"):
        ckpt = load_checkpoint(run / name)
        cfg = from_dict(ckpt["config"])
        cl = use_channels_last(cfg.channels_last, cfg.model, cfg.image_size, torch.device("cpu"))
        model = model_from_checkpoint(ckpt)
        if cl:
            model = model.to(memory_format=torch.channels_last)
        acc, acc_tta = evaluate(model, x, va.labels, cfg.amp == "bf16", cl)
        print(
            json.dumps(dict(checkpoint=str(run / name), epoch=ckpt.get("epoch"), acc=acc, acc_flip_tta=acc_tta)),
            flush=True,
        )


def parse_value(text: str) -> Any:
    """``key=value`` override values: Python literals (numbers, tuples, dicts, True/False) or strings."""
    import ast

    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("candidate", nargs="?", choices=sorted(CANDIDATES), help="recipe to train")
    ap.add_argument("overrides", nargs="*", help="key=value changes to the candidate (e.g. epochs=8 ema=0.99)")
    ap.add_argument("--out", type=Path, help="append the result as one JSON line to this file")
    ap.add_argument(
        "--bench",
        nargs="+",
        metavar="CANDIDATE",
        help="measure training throughput of these "
        "candidates instead (fp32/bf16 x channels_last or not; add --channels-last-only to halve)",
    )
    ap.add_argument(
        "--eval-run",
        type=Path,
        metavar="RUN",
        help="evaluate RUN/best.pt and RUN/last.pt (the weights "
        "inference loads: the EMA when on) on val_50 with and without flip TTA, then exit",
    )
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    ap.add_argument("--channels-last-only", action="store_true", help="--bench: channels_last cases only")
    ap.add_argument("--bf16-only", action="store_true", help="--bench: bf16 autocast cases only")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.eval_run:
        eval_run(args.eval_run)
        return
    if args.bench:
        layouts = (True,) if args.channels_last_only else (False, True)
        cases = [
            (f"{k} {'bf16' if amp else 'fp32'}{' cl' if cl else ''}", dict(CANDIDATES[k], amp=amp, channels_last=cl))
            for k in args.bench
            for amp in ((True,) if args.bf16_only else (False, True))
            for cl in layouts
        ]
        bench(cases)
        return
    if args.candidate is None:
        ap.error("name a candidate or pass --bench")
    cfg = {**BASE, **CANDIDATES[args.candidate]}
    for item in args.overrides:
        key, _, value = item.partition("=")
        if key not in cfg and key != "seed":
            ap.error(f"unknown key {key!r}; valid: {', '.join(sorted(cfg))}")
        cfg[key] = parse_value(value)
    tr = load_image_set(f"{DATA}/train_50", cache="disk")
    va = load_image_set(f"{DATA}/val_50", csv_path=f"{DATA}/val_gt.csv", cache="disk")
    data = (torch.from_numpy(tr.images[:]), tr.labels, torch.from_numpy(va.images[:]), va.labels)
    name = " ".join([args.candidate, *args.overrides])
    row = run(name, cfg, data)
    line = json.dumps(row)
    print(line, flush=True)
    if args.out:
        with open(args.out, "a") as f:
            f.write(line + "\n")


if __name__ == "__main__":
    main()
