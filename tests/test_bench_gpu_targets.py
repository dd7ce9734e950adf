"""``fcnlab bench``'s GPU targets (issue 12) and its compile mode, checked without a GPU."""

from __future__ import annotations

import argparse

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
