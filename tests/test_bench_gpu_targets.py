"""``fcnlab bench``'s GPU targets and its compile mode, checked without a GPU."""

from __future__ import annotations

import argparse
import time

import torch

from fcnlab.bench.models import Schedule, _compile_payback, _phase
from fcnlab.bench.report import _compile_lines
from fcnlab.bench.run import _check_targets
from fcnlab.bench.sections import GPU_TARGETS
from fcnlab.cli.bench import command_line


def _result(device: str, quick: bool = False) -> dict:
    models = {name: {"input": "3x32x32", "batch": 8, "train": {"img_per_s": goal * (1.1 if i else 0.5)}}
              for i, (name, goal) in enumerate(GPU_TARGETS["train_img_per_s"].items())}
    return {"quick": quick, "env": {"device": device}, "models": models,
            "pipeline": {"fcn8s_resnet34": {"e2e_over_pure": 0.96}}}


def test_gpu_training_targets_are_checked_on_cuda_only():
    checks = {c["name"]: c for c in _check_targets(_result("cuda:0"))}
    names = list(GPU_TARGETS["train_img_per_s"])
    first = next(c for n, c in checks.items() if n.startswith(f"{names[0]} training img/s"))
    assert not first["met"] and first["target"] == f">= {GPU_TARGETS['train_img_per_s'][names[0]]:g}"
    assert all(c["met"] for n, c in checks.items() if n.startswith(tuple(f"{m} training" for m in names[1:])))
    assert checks["fcn8s_resnet34 end-to-end epoch / pure steps (GPU)"]["met"]
    assert not [n for n in (c["name"] for c in _check_targets(_result("cpu"))) if "training img/s" in n]
    assert not [n for n in (c["name"] for c in _check_targets(_result("cuda:0", quick=True)))
                if "training img/s" in n]


def test_the_compile_mode_is_part_of_the_rerun_command():
    args = argparse.Namespace(quick=False, device="cuda", data=None, only="models", out=None, threads=0,
                              compile=True, compile_mode="reduce-overhead")
    assert command_line(args) == "fcnlab bench --device cuda --only models --compile --compile-mode reduce-overhead"


def test_compiled_phases_say_whether_compiling_pays_back():
    """A compiled phase times its first call (the compile) and its eager twin; the report turns both into the
    images (and course epochs) after which compiling has paid for itself, or says it never does."""
    calls = {"compiled": 0}

    def compiled():
        calls["compiled"] += 1
        time.sleep(0.3 if calls["compiled"] == 1 else 0.001)  # the first call "compiles"

    def eager():
        time.sleep(0.004)

    out = _phase(compiled, 10, torch.device("cpu"), Schedule(warmup=1, windows=3), None, eager_fn=eager)
    c = out["compile"]
    assert c["first_call_s"] >= 0.3 and c["speedup"] > 1.5 and c["break_even_images"] > 0
    assert _compile_payback(10.0, 200.0, 100.0) == {"first_call_s": 10.0, "eager_img_per_s": 100.0,
                                                    "speedup": 2.0, "break_even_images": 2000}
    assert _compile_payback(10.0, 80.0, 100.0)["break_even_images"] is None
    models = {"vgg16_bn": {"task": "classify", "compile_mode": "reduce-overhead",
                           "train": {"compile": _compile_payback(10.0, 200.0, 100.0)},
                           "infer": {"compile": _compile_payback(5.0, 80.0, 100.0)}}}
    text = "\n".join(_compile_lines(models))
    assert ("Compiled vgg16_bn training (reduce-overhead): first call 10.0 s (compiling included), 2.00x eager "
            "(100 img/s); the compile time is paid back after 2,000 images (0.10 epochs).") in text
    assert "vgg16_bn inference (reduce-overhead)" in text and "is never paid back (compiled is not faster)" in text
    assert _compile_lines({"vgg16_bn": {"train": {"img_per_s": 1.0}}}) == []
