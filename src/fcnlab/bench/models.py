"""Pure model throughput: training steps and batched inference on a resident batch, FLOPs and MFU.

The training step is training's step (autocast, training's memory format, ``zero_grad(set_to_none=True)``,
GradScaler, training's optimizer with fused kernels on CUDA) on one prepared batch that stays on the
device, so data loading is excluded; :mod:`fcnlab.bench.pipeline` measures the real epoch against it.
"""

from __future__ import annotations

import dataclasses
import gc
from dataclasses import dataclass
from typing import Any

import torch

from fcnlab.bench.timing import PeakMemory, count_flops, measure_throughput, stopwatch, sync
from fcnlab.config import TrainConfig, from_dict
from fcnlab.infer.folding import foldable
from fcnlab.infer.predictor import Predictor, make_predictor
from fcnlab.models.memory_format import to_channels_last, use_channels_last
from fcnlab.runtime.device import amp_dtype, autocast
from fcnlab.runtime.device import compile_model as compile_fn
from fcnlab.tasks import make_task, task_info
from fcnlab.tasks.base import Task
from fcnlab.training.optim import build_optimizer

#: Batch of the second folded-vs-unfolded P1 inference measurement (a few images at a time).
SMALL_BATCH = 8
#: Further batches of the folded-vs-unfolded sweep (``folded_speedup_by_batch``), below the eval batch.
SWEEP_BATCHES = (32, 64, 128)


@dataclass(frozen=True)
class ModelCase:
    """One model to benchmark: registry name, task, square input side and batch sizes."""

    name: str
    task: str
    size: int
    batch: int
    eval_batch: int
    num_classes: int


@dataclass(frozen=True)
class Schedule:
    """How long to time: warm-up steps, timed windows and the shortest window in seconds."""

    warmup: int = 1
    windows: int = 3
    min_window_s: float = 0.0


def model_cases(device: torch.device, quick: bool) -> dict[str, ModelCase]:
    """The three course models at their course sizes (``quick``: tiny inputs and batches).

    P1 ``vgg16_bn`` at 32x32 (batch 128, eval 256 as the recipe); P2 FCNs at 512x512, batch 2 on the CPU
    (as docs/BENCHMARKS.md's CPU numbers) and the recipe's 8 (eval 16) on a GPU.
    """
    if quick:
        return {
            "vgg16_bn": ModelCase("vgg16_bn", "classify", 32, 4, 8, 50),
            "fcn32s_vgg16": ModelCase("fcn32s_vgg16", "segment", 64, 2, 2, 7),
            "fcn8s_resnet34": ModelCase("fcn8s_resnet34", "segment", 64, 2, 2, 7),
        }
    seg_batch, seg_eval = (8, 16) if device.type == "cuda" else (2, 2)
    return {
        "vgg16_bn": ModelCase("vgg16_bn", "classify", 32, 128, 256, 50),
        "fcn32s_vgg16": ModelCase("fcn32s_vgg16", "segment", 512, seg_batch, seg_eval, 7),
        "fcn8s_resnet34": ModelCase("fcn8s_resnet34", "segment", 512, seg_batch, seg_eval, 7),
    }


def case_config(case: ModelCase, device: torch.device, **overrides: Any) -> TrainConfig:
    """The validated TrainConfig of ``case`` (recipe defaults, no pretrained weights)."""
    values = {
        "task": case.task,
        "model": case.name,
        "num_classes": case.num_classes,
        "batch_size": case.batch,
        "eval_batch_size": case.eval_batch,
        "image_size": case.size,
        "device": str(device),
        "pretrained": False,
        **overrides,
    }
    return from_dict(values, "fcnlab bench")


def random_batch(case: ModelCase, batch: int, device: torch.device, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """A uint8 image batch and integer targets of ``case``'s shapes on ``device``."""
    gen = torch.Generator(device="cpu").manual_seed(seed)
    images = torch.randint(0, 256, (batch, 3, case.size, case.size), generator=gen, dtype=torch.uint8)
    shape = (batch, case.size, case.size) if task_info(case.task).dense else (batch,)
    targets = torch.randint(0, case.num_classes, shape, generator=gen, dtype=torch.int64)
    return images.to(device), targets.to(device)


def channels_last(t: torch.Tensor, cfg: TrainConfig, device: torch.device) -> torch.Tensor:
    """``t`` in the memory format training trains ``cfg``'s model in on ``device``."""
    return to_channels_last(t, use_channels_last(cfg.channels_last, cfg.model, cfg.image_size, device))


class TrainStep:
    """Training's optimisation step on one resident, already-prepared batch (callable, no arguments)."""

    def __init__(
        self,
        model: torch.nn.Module,
        task: Task,
        cfg: TrainConfig,
        device: torch.device,
        x: torch.Tensor,
        y: torch.Tensor,
        optimizer: torch.optim.Optimizer | None = None,
        scaler: torch.amp.GradScaler | None = None,
    ):
        self.model, self.task, self.device, self.x, self.y = model, task, device, x, y
        self.optimizer = optimizer or build_optimizer(model, cfg, device)
        self.amp = amp_dtype(cfg.amp, device)
        self.scaler = scaler or torch.amp.GradScaler(device.type, enabled=self.amp == torch.float16)

    def __call__(self) -> torch.Tensor:
        with autocast(self.device, self.amp):
            logits = self.model(self.x)
            loss = self.task.loss(logits.float(), self.y)
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self.scaler.step(self.optimizer)
        self.scaler.update()
        return loss.detach()


def _rate(flops: int, per_item: int, items_per_s: float, peak_gflops: float | None) -> dict[str, Any]:
    gflops = flops / per_item * items_per_s / 1e9
    return {
        "gflop_per_img": round(flops / per_item / 1e9, 4),
        "gflops_per_s": round(gflops, 2),
        "mfu": round(gflops / peak_gflops, 4) if peak_gflops else None,
    }


def predictor(
    model: torch.nn.Module, cfg: TrainConfig, device: torch.device, fold: bool, fuse: bool = True
) -> Predictor:
    """The model prepared as :func:`fcnlab.infer.predictor.load_predictor` prepares a checkpoint's (no disk).

    ``fold``: the folded VGG head for P1 at 32x32; ``fuse``: BatchNorm folded into the convolutions. Both
    work on copies, so ``model`` keeps training.
    """
    return make_predictor(model, cfg, device, amp_dtype(cfg.amp, device), fold=fold, fuse=fuse)


def _phase(
    fn, items: int, device: torch.device, schedule: Schedule, peak: float | None, eager_fn=None
) -> dict[str, Any]:
    """FLOPs, throughput and peak memory of one callable.

    FLOPs are counted on the first warm-up call, or on one call of ``eager_fn`` (the uncompiled twin) when
    ``fn`` is compiled, since the counter cannot see inside compiled graphs. A compiled ``fn`` also gets
    ``compile``: :func:`_compile_payback` (its first call's seconds against the eager twin's rate).
    """

    def timed(f):  # the first call was made: FLOP counting, or the compile below
        return measure_throughput(
            f, items, device, warmup=schedule.warmup - 1, windows=schedule.windows, min_window_s=schedule.min_window_s
        )

    payback = None
    with PeakMemory(device) as mem:
        flops, _ = count_flops(eager_fn or fn)
        if eager_fn is not None:
            with stopwatch() as first:  # the first call compiles (once per shape and mode)
                fn()
                sync(device)
        tp = timed(fn)
        if eager_fn is not None:
            payback = _compile_payback(first["seconds"], tp.items_per_s, timed(eager_fn).items_per_s)
    return {
        "batch": items,
        "img_per_s": round(tp.items_per_s, 3),
        "step_ms": round(tp.step_ms, 2),
        **({"compile": payback} if payback else {}),
        "timed_steps": tp.steps,
        "windows_img_per_s": [round(w, 3) for w in tp.windows],
        "cpu_util": None if tp.cpu_util is None else round(tp.cpu_util, 2),
        **_rate(flops, items, tp.items_per_s, peak),
        "peak_gpu_mb": None if mem.gpu_mb is None else round(mem.gpu_mb, 1),
        "peak_rss_mb": None if mem.rss_mb is None else round(mem.rss_mb, 1),
    }


def _compile_payback(first_call_s: float, compiled_img_per_s: float, eager_img_per_s: float) -> dict[str, Any]:
    """Whether compiling pays: the first compiled call's seconds (compiling included), the speed-up over eager,
    and how many images it takes to earn the compile time back (None: compiled is not faster, never)."""
    saved_per_image = 1 / eager_img_per_s - 1 / compiled_img_per_s
    return {
        "first_call_s": round(first_call_s, 2),
        "eager_img_per_s": round(eager_img_per_s, 3),
        "speedup": round(compiled_img_per_s / eager_img_per_s, 3),
        "break_even_images": round(first_call_s / saved_per_image) if saved_per_image > 0 else None,
    }


def _folded_sweep(
    result: dict[str, Any],
    plain: Predictor,
    folded: Predictor,
    images: torch.Tensor,
    device: torch.device,
    schedule: Schedule,
) -> dict[str, float]:
    """Folded / unfolded P1 inference img/s at each batch below the eval batch, plus the two measured above.

    The gain falls as the batch grows: a few images at a time the run reads the 411 MB ``Linear(25088,
    4096)`` weight per batch, which the fold removes; at large batches the convolutions' FLOPs dominate, and
    the fold saves 0.20 of 0.87 GFLOP per image.
    """
    out = {str(result["eval_batch"]): result["folded_speedup"]}
    if "folded_speedup_small_batch" in result:
        out[str(result["infer_small"]["batch"])] = result["folded_speedup_small_batch"]
    for b in SWEEP_BATCHES:
        if b >= len(images):
            continue
        part = images[:b]
        ours = _phase(lambda part=part: folded.logits(part), b, device, schedule, None)["img_per_s"]
        base = _phase(lambda part=part: plain.logits(part), b, device, schedule, None)["img_per_s"]
        out[str(b)] = round(ours / base, 3)
    return dict(sorted(out.items(), key=lambda kv: int(kv[0])))


def bench_model(
    case: ModelCase,
    device: torch.device,
    schedule: Schedule,
    peak_gflops: float | None = None,
    compile_model: bool = False,
    compile_mode: str = "default",
) -> dict[str, Any]:
    """Train and inference throughput, FLOPs, MFU and peak memory of one model (+ the folded P1 head).

    With ``compile_model`` the model is compiled as training compiles it (``compile_mode``)."""
    from fcnlab.models import build_model

    cfg = case_config(case, device, compile=compile_model, compile_mode=compile_mode)
    task = make_task(cfg)
    torch.manual_seed(0)
    model = to_channels_last(
        build_model(case.name, case.num_classes).to(device),
        use_channels_last(cfg.channels_last, cfg.model, cfg.image_size, device),
    )
    params = sum(p.numel() for p in model.parameters())
    run_model = compile_fn(model, cfg.compile_mode) if compile_model else model
    gen = torch.Generator(device=device).manual_seed(0)
    images, targets = random_batch(case, case.batch, device)
    x, y = task.prepare_train(images, targets, gen)
    x = channels_last(x, cfg, device)
    step = TrainStep(run_model, task, cfg, device, x, y)
    model.train()
    result: dict[str, Any] = {
        "model": case.name,
        "task": case.task,
        "input": f"3x{case.size}x{case.size}",
        "batch": case.batch,
        "eval_batch": case.eval_batch,
        "params_m": round(params / 1e6, 2),
        "amp": str(step.amp).replace("torch.", "") if step.amp else "fp32",
        "channels_last": use_channels_last(cfg.channels_last, cfg.model, cfg.image_size, device),
        "compiled": compile_model,
        "compile_mode": compile_mode if compile_model else None,
    }
    eager = TrainStep(model, task, cfg, device, x, y) if compile_model else None
    result["train"] = _phase(step, case.batch, device, schedule, peak_gflops, eager)
    del step, eager
    gc.collect()
    eval_images, _ = random_batch(case, case.eval_batch, device, seed=1)  # uint8, as Predictor.logits takes
    plain = predictor(model, cfg, device, fold=False)
    timed = dataclasses.replace(plain, model=compile_fn(plain.model, cfg.compile_mode)) if compile_model else plain
    result["infer"] = _phase(
        lambda: timed.logits(eval_images),
        case.eval_batch,
        device,
        schedule,
        peak_gflops,
        (lambda: plain.logits(eval_images)) if compile_model else None,
    )
    if foldable(case.name, case.size):
        folded = predictor(model, cfg, device, fold=True)
        result["infer_folded"] = _phase(
            lambda: folded.logits(eval_images), case.eval_batch, device, schedule, peak_gflops
        )
        speedup = result["infer_folded"]["img_per_s"] / result["infer"]["img_per_s"]
        result["folded_speedup"] = round(speedup, 3)
        bare = predictor(model, cfg, device, fold=False, fuse=False)  # the trained model as it is, eval mode
        result["infer_plain"] = _phase(lambda: bare.logits(eval_images), case.eval_batch, device, schedule, peak_gflops)
        model.train()
        speedup = result["infer_folded"]["img_per_s"] / result["infer_plain"]["img_per_s"]
        result["inference_path_speedup"] = round(speedup, 3)
        del bare
        small = min(SMALL_BATCH, case.eval_batch)
        if small < case.eval_batch:  # there reading the 411 MB fc6 weight, not the convs, sets the pace
            few = eval_images[:small]
            result["infer_small"] = _phase(lambda: plain.logits(few), small, device, schedule, peak_gflops)
            result["infer_folded_small"] = _phase(lambda: folded.logits(few), small, device, schedule, peak_gflops)
            speedup = result["infer_folded_small"]["img_per_s"] / result["infer_small"]["img_per_s"]
            result["folded_speedup_small_batch"] = round(speedup, 3)
        result["folded_speedup_by_batch"] = _folded_sweep(result, plain, folded, eval_images, device, schedule)
        del folded
    del model, run_model, x, y
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()
    return result
