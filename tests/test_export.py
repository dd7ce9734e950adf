"""``fcnlab export``: ONNX (onnxruntime parity) and torch.export round trips, small inputs only."""

from __future__ import annotations

import argparse

import pytest
import torch
from torch import nn

from fcnlab.checkpoint import model_from_checkpoint, save_checkpoint
from fcnlab.cli import export as export_command
from fcnlab.cli.main import main
from fcnlab.errors import ConfigError
from fcnlab.infer import export
from fcnlab.infer.folding import FoldedVGG
from fcnlab.models import build_model

#: exports and runs ONNX / torch.export graphs: the full suite's, not the fast lane's (-m "not slow and not realdata")
pytestmark = pytest.mark.slow


def _randomize_scores(model: nn.Module) -> None:
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, m in model.named_modules():
            if name.startswith("score"):
                m.weight.copy_(torch.randn(m.weight.shape, generator=g) * 0.01)
                m.bias.copy_(torch.randn(m.bias.shape, generator=g) * 0.1)


@pytest.fixture(scope="module")
def fcn_ckpt(tmp_path_factory):
    """An fcn8s_resnet34 checkpoint (7 classes) whose outputs are not all zero."""
    torch.manual_seed(0)
    model = build_model("fcn8s_resnet34", 7)
    _randomize_scores(model)
    path = tmp_path_factory.mktemp("ckpt") / "best.pt"
    save_checkpoint(
        path,
        task="segment",
        model_name="fcn8s_resnet34",
        num_classes=7,
        model=model.state_dict(),
        config={"task": "segment", "model": "fcn8s_resnet34", "image_size": 512},
    )
    return path


def _run(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    export_command.register(parser.add_subparsers())
    return export_command.run(parser.parse_args(["export", *argv]))


def test_vgg16_bn_onnx_parity_on_32x32(tmp_path):
    ort = pytest.importorskip("onnxruntime")
    torch.manual_seed(0)
    model = build_model("vgg16_bn", 50).eval()
    exported = export.exportable_model(model, "classify", (32, 32))
    assert isinstance(exported, FoldedVGG)  # ONNX cannot express AdaptiveAvgPool2d((7, 7)) on a 1x1 map
    out = tmp_path / "vgg.onnx"
    export.export_onnx(exported, torch.randn(2, 3, 32, 32), out, dynamic_hw=False)
    assert ort.InferenceSession(str(out)).get_inputs()[0].shape[0] == "batch"
    x = torch.randn(3, 3, 32, 32)
    with torch.no_grad():
        want = model(x)
    got = export.run_onnx(out, x)
    assert got.shape == (3, 50)
    assert (got - want).abs().max() <= 1e-4


def test_fcn8s_onnx_cli_parity_at_several_sizes(fcn_ckpt, tmp_path, capsys):
    pytest.importorskip("onnxruntime")
    out = tmp_path / "fcn8s.onnx"
    assert _run(["--ckpt", str(fcn_ckpt), "--format", "onnx", "--out", str(out)]) == 0
    assert "check: max abs diff" in capsys.readouterr().out
    model = model_from_checkpoint(torch.load(fcn_ckpt, weights_only=True))
    for shape in [(2, 3, 64, 64), (1, 3, 96, 128), (1, 3, 100, 75)]:
        x = torch.randn(*shape)
        with torch.no_grad():
            want = model(x)
        got = export.run_onnx(out, x)
        assert got.shape == (shape[0], 7, *shape[2:])
        assert want.abs().max() > 0.1
        assert (got - want).abs().max() <= 1e-4, shape


@pytest.mark.parametrize("name", ["fpn_lite16_ppm", "fcn8s_lite_ppm"])
def test_laptop_models_with_pyramid_pooling_export_to_onnx_at_several_sizes(tmp_path, name):
    """p2_laptop's fpn_lite16_ppm and the pair's pooled encoder (their pooling windows are fixed: ONNX has no
    adaptive pooling at a dynamic size)."""
    pytest.importorskip("onnxruntime")
    torch.manual_seed(0)
    model = build_model(name, 7).eval()
    _randomize_scores(model)
    out = tmp_path / "ppm.onnx"
    export.export_onnx(model, torch.randn(1, 3, 64, 64), out, dynamic_hw=True)
    for shape in [(2, 3, 128, 128), (1, 3, 96, 160)]:
        x = torch.randn(*shape)
        with torch.no_grad():
            want = model(x)
        got = export.run_onnx(out, x)
        assert got.shape == (shape[0], 7, *shape[2:]) and want.abs().max() > 0.01
        assert (got - want).abs().max() <= 1e-4, shape


@pytest.mark.slow  # torch.export traces with dynamo: ~5 s on 2 cores
def test_fcn8s_torch_export_round_trip(fcn_ckpt, tmp_path):
    out = tmp_path / "fcn8s.pt2"
    assert _run(["--ckpt", str(fcn_ckpt.parent), "--format", "torch-export", "--out", str(out)]) == 0
    model = model_from_checkpoint(torch.load(fcn_ckpt, weights_only=True))
    program = torch.export.load(str(out)).module()
    for shape in [(1, 3, 64, 64), (3, 3, 96, 128), (1, 3, 100, 75)]:
        x = torch.randn(*shape)
        with torch.no_grad():
            torch.testing.assert_close(program(x), model(x), atol=1e-5, rtol=1e-5)


def test_classifier_torch_export_has_fixed_size_and_dynamic_batch(tmp_path):
    model = build_model("resnet18", 10).eval()
    out = tmp_path / "r18.pt2"
    export.export_program(
        export.exportable_model(model, "classify", (32, 32)), torch.randn(2, 3, 32, 32), out, dynamic_hw=False
    )
    x = torch.randn(5, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(export.run_program(out, x), model(x), atol=1e-5, rtol=1e-5)


def test_example_size_rules():
    assert export.example_size("classify", {"image_size": 224}, None) == (224, 224)
    assert export.example_size("classify", {}, None) == (32, 32)
    assert export.example_size("segment", {"image_size": 512}, None) == export.FCN_EXAMPLE_SIZE
    assert export.example_size("segment", {}, [96, 128]) == (96, 128)
    with pytest.raises(ConfigError, match="multiples of 32"):
        export.example_size("segment", {}, [100, 128])


def test_bad_requests_are_one_line_errors(fcn_ckpt, tmp_path, capsys):
    assert main(["export", "--ckpt", str(fcn_ckpt), "--out", str(fcn_ckpt)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("fcnlab: error: --out") and "checkpoint itself" in err
    assert fcn_ckpt.stat().st_size > 1000  # the input is untouched
    assert main(["export", "--ckpt", str(tmp_path / "nope.pt"), "--out", str(tmp_path / "x.onnx")]) == 2
    assert "does not exist" in capsys.readouterr().err
    vgg = build_model("vgg16_bn", 10)  # 2x2 features -> AdaptiveAvgPool2d((7, 7)) has no ONNX form
    with pytest.raises(ConfigError, match="ONNX cannot express VGG at 64x64"):
        export.export_onnx(
            export.exportable_model(vgg, "classify", (64, 64)), torch.zeros(1, 3, 64, 64), tmp_path / "x.onnx", False
        )
    with pytest.raises(ConfigError, match="--opset"):
        export.export_onnx(nn.Identity(), torch.zeros(1, 3, 4, 4), tmp_path / "x.onnx", False, opset=13)
    assert not (tmp_path / "x.onnx").exists()
