"""``fcnlab bench``: training speed set against the device's measured peak, and its compile mode, checked without a
GPU."""

from __future__ import annotations

import argparse
import time

import torch

from fcnlab.bench.models import Schedule, _compile_payback, _phase
from fcnlab.bench.report import _compile_lines
from fcnlab.bench.run import _comparisons
from fcnlab.cli.bench import command_line


def test_training_speed_is_set_against_the_devices_matmul_peak():
    models = {
        "fcn8s_resnet34": {"input": "3x512x512", "batch": 8, "train": {"img_per_s": 468.0, "mfu": 0.068}},
        "vgg16_bn": {"input": "3x32x32", "batch": 128, "train": {"img_per_s": 99.0, "mfu": None}},
    }
    rows = {c["name"]: c for c in _comparisons({"env": {"device": "cuda:0"}, "models": models})}
    row = rows["fcn8s_resnet34 training img/s (3x512x512, batch 8)"]
    assert row["value"] == 468.0 and row["against"] == "6.8% of this device's measured matmul peak"
    assert not [n for n in rows if n.startswith("vgg16_bn training")]  # no peak measured: nothing to set it against
    assert not any({"met", "target", "goal"} & set(r) for r in rows.values())


def test_the_compile_mode_is_part_of_the_rerun_command():
    args = argparse.Namespace(
        quick=False,
        device="cuda",
        data=None,
        only="models",
        out=None,
        threads=0,
        compile=True,
        compile_mode="reduce-overhead",
    )
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
    assert _compile_payback(10.0, 200.0, 100.0) == {
        "first_call_s": 10.0,
        "eager_img_per_s": 100.0,
        "speedup": 2.0,
        "break_even_images": 2000,
    }
    assert _compile_payback(10.0, 80.0, 100.0)["break_even_images"] is None
    models = {
        "vgg16_bn": {
            "task": "classify",
            "compile_mode": "reduce-overhead",
            "train": {"compile": _compile_payback(10.0, 200.0, 100.0)},
            "infer": {"compile": _compile_payback(5.0, 80.0, 100.0)},
        }
    }
    text = "\n".join(_compile_lines(models))
    assert (
        "Compiled vgg16_bn training (reduce-overhead): first call 10.0 s (compiling included), 2.00x eager "
        "(100 img/s); the compile time is paid back after 2,000 images (0.10 epochs)."
    ) in text
    assert "vgg16_bn inference (reduce-overhead)" in text and "is never paid back (compiled is not faster)" in text
    assert _compile_lines({"vgg16_bn": {"train": {"img_per_s": 1.0}}}) == []
