"""``amp: bf16`` on a CPU: bf16 autocast where oneDNN computes bf16 natively, fp32 (and one summary line) where it
would be emulated, which made a p2_laptop training step 15-25x slower on an AVX2-only CPU."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from fcnlab.cli.main import main
from fcnlab.data.synthetic import make_classification_data
from fcnlab.runtime import device as device_mod
from fcnlab.runtime.device import amp_dtype
from train_once import classify_train_argv

CPU, CUDA = torch.device("cpu"), torch.device("cuda")


@pytest.mark.parametrize("native", [True, False])
def test_bf16_on_a_cpu_follows_native_support(monkeypatch, native):
    monkeypatch.setattr(device_mod, "cpu_computes_bf16", lambda: native)
    assert amp_dtype("bf16", CPU) == (torch.bfloat16 if native else None)
    # nothing else depends on the CPU's bf16 support
    assert amp_dtype("bf16", CUDA) is torch.bfloat16
    assert amp_dtype("auto", CUDA) is torch.bfloat16
    assert amp_dtype("auto", CPU) is None
    assert amp_dtype("off", CPU) is None
    assert amp_dtype("fp16", CPU) is torch.float16


def test_native_bf16_check_is_torchs_own():
    assert device_mod.cpu_computes_bf16() is bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())


def _summary(tmp_path: Path, capsys, *extra: str) -> list[str]:
    data = make_classification_data(tmp_path / "p1", num_classes=4, train_per_class=4, val_per_class=2)
    run = tmp_path / "run"
    assert main(classify_train_argv(data, run, *extra, epochs=1)) == 0
    return [line for line in capsys.readouterr().out.splitlines() if line.startswith("  ")]


@pytest.mark.parametrize("native", [True, False])
def test_training_summary_says_when_bf16_runs_in_fp32(tmp_path, capsys, monkeypatch, native):
    monkeypatch.setattr(device_mod, "cpu_computes_bf16", lambda: native)
    seen: list[torch.dtype | None] = []
    real_autocast = device_mod.autocast

    def recording_autocast(dev: torch.device, dtype: torch.dtype | None) -> torch.autocast:
        seen.append(dtype)
        return real_autocast(dev, dtype)

    monkeypatch.setattr("fcnlab.training.loop.autocast", recording_autocast)
    lines = _summary(tmp_path, capsys, "--amp", "bf16")
    precision = [line for line in lines if line.startswith("  precision:")]
    if native:
        assert precision == [] and set(seen) == {torch.bfloat16}
    else:
        assert precision == [
            "  precision: fp32 (amp bf16 asked for, but this CPU has no AVX-512/AMX bf16 and emulating it is slower)"
        ]
        assert set(seen) == {None}
    assert seen  # the training steps went through autocast


def test_no_precision_line_without_bf16(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(device_mod, "cpu_computes_bf16", lambda: False)
    assert not [line for line in _summary(tmp_path, capsys) if line.startswith("  precision:")]
