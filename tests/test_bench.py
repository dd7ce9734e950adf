"""``fcnlab bench``: measuring primitives, sections, reports and the CLI (structure, never timings)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from fcnlab.bench import evaluator, models, pipeline, report, run, timing
from fcnlab.cli.main import main
from fcnlab.errors import ConfigError, DataError
from fcnlab.evaluate.mask_folders import evaluate_masks

CPU = torch.device("cpu")


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny tensors gain nothing from a second thread, and on a busy shared CPU every parallel region of a
    2-thread torch waits for a descheduled thread: one thread keeps these tests fast on a loaded machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_count_flops_counts_multiply_adds_twice_and_backward():
    layer = nn.Linear(8, 4, bias=False)
    x = torch.randn(3, 8)
    flops, out = timing.count_flops(lambda: layer(x))
    assert flops == 2 * 3 * 8 * 4 and out.shape == (3, 4)
    train, _ = timing.count_flops(lambda: layer(x).sum().backward())
    assert train == 2 * flops  # forward + grad of the weight
    x.requires_grad_()
    train, _ = timing.count_flops(lambda: layer(x).sum().backward())
    assert train == 3 * flops  # + grad of the input


def test_measure_throughput_runs_warmup_then_windows():
    calls = []
    tp = timing.measure_throughput(lambda: calls.append(1), 5, CPU, warmup=2, windows=3)
    assert len(calls) == 2 + 3 and tp.steps == 3 and len(tp.windows) == 3
    assert tp.items_per_s > 0 and tp.step_ms >= 0 and tp.cpu_util is not None
    grown = timing.measure_throughput(
        lambda: calls.append(1), 1, CPU, warmup=0, windows=2, min_window_s=0.01, max_steps_per_window=7
    )
    assert grown.steps == 1 + 7  # the second window holds enough steps to last min_window_s (capped)
    assert set(timing.Throughput(1.0, 2.0, 3, [1.0]).to_dict()) >= {"items_per_s", "step_ms", "cpu_util"}


@pytest.mark.slow
def test_peak_memory_sees_a_large_allocation():
    # In a fresh process: inside the pytest process, memory freed by earlier tests can be reused by the
    # allocator without growing RSS, which would hide the allocation.
    code = (
        "import torch; from fcnlab.bench import timing\n"
        "cpu = torch.device('cpu')\n"
        "with timing.PeakMemory(cpu) as base:\n    pass\n"
        "with timing.PeakMemory(cpu) as mem:\n    block = torch.ones(64 * 2**20 // 4)\n"
        "assert mem.gpu_mb is None and mem.rss_mb is not None and base.rss_mb is not None\n"
        "assert mem.rss_mb >= base.rss_mb + 48, (mem.rss_mb, base.rss_mb)\n"
    )
    import subprocess

    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]


def test_matmul_peak_reports_gflops():
    mm = timing.matmul_peak(CPU, torch.float32, 128, windows=2, min_window_s=0.0)
    assert mm["gflops"] > 0 and mm["dtype"] == "float32" and mm["size"] == 128


def test_parse_only_and_sections():
    assert run.parse_only("fcn8s_resnet34, e2e") == ("fcn8s_resnet34", "pipeline")
    assert run.parse_only("models") == run.MODEL_SECTIONS
    assert run.parse_only(None) == ()
    with pytest.raises(ConfigError, match="unknown section 'bogus'"):
        run.parse_only("tsne,bogus")
    assert run.wanted(run.BenchOptions(only=("fcn8s_resnet34",))) == ["matmul", "fcn8s_resnet34"]
    assert run.wanted(run.BenchOptions(only=("tsne",))) == ["tsne"]
    assert run.wanted(run.BenchOptions()) == list(run.SECTIONS)


def test_folded_sweep_covers_the_batches_below_the_eval_batch(monkeypatch):
    """Each sweep batch is timed on the first ``b`` images, for both predictors; the ratio is ours / base."""
    calls = []

    class Fake:
        def __init__(self, name):
            self.name = name

        def logits(self, x):
            calls.append((self.name, len(x)))

    def fake_phase(fn, items, device, schedule, peak):
        fn()
        return {"img_per_s": 3.0 if calls[-1][0] == "folded" else 2.0}

    monkeypatch.setattr(models, "_phase", fake_phase)
    result = {"eval_batch": 100, "folded_speedup": 1.3, "infer_small": {"batch": 8}, "folded_speedup_small_batch": 2.3}
    sweep = models._folded_sweep(
        result, Fake("plain"), Fake("folded"), torch.zeros(100, 3, 4, 4), CPU, models.Schedule(1, 1, 0.0)
    )
    assert list(sweep) == ["8", "32", "64", "100"]  # 128 is not below the eval batch
    assert sweep["8"] == 2.3 and sweep["100"] == 1.3 and sweep["32"] == sweep["64"] == 1.5
    assert sorted(calls) == [("folded", 32), ("folded", 64), ("plain", 32), ("plain", 64)]
    row = {"eval_batch": 100, "folded_speedup": 1.3, "folded_speedup_by_batch": sweep}
    lines = report.to_markdown({"models": {"vgg16_bn": row}})
    assert "By batch: 8: 2.30x, 32: 1.50x, 64: 1.50x, 100: 1.30x." in lines


@pytest.mark.slow
def test_bench_model_on_a_tiny_fcn():
    case = models.ModelCase("fcn8s_resnet34", "segment", 32, 2, 3, 7)
    row = models.bench_model(case, CPU, models.Schedule(1, 1, 0.0), peak_gflops=100.0)
    assert row["model"] == "fcn8s_resnet34" and row["params_m"] > 20 and row["amp"] == "fp32"
    for phase in ("train", "infer"):
        p = row[phase]
        assert (
            p["img_per_s"] > 0
            and p["gflop_per_img"] > 0
            and p["mfu"] == pytest.approx(p["gflops_per_s"] / 100.0, abs=1e-3)
        )
        assert p["peak_gpu_mb"] is None and p["peak_rss_mb"] > 0
    assert row["train"]["gflop_per_img"] > 2.5 * row["infer"]["gflop_per_img"]  # forward + backward
    assert "infer_folded" not in row


@pytest.mark.slow
def test_predictor_folds_only_the_p1_vgg():
    cfg = models.case_config(models.ModelCase("vgg16_bn", "classify", 32, 2, 2, 50), CPU)
    from fcnlab.infer.folding import FoldedVGG
    from fcnlab.models import build_model

    vgg = build_model("vgg16_bn", 50)
    folded = models.predictor(vgg, cfg, CPU, fold=True)
    assert isinstance(folded.model, FoldedVGG) and not folded.model.training
    plain = models.predictor(vgg, cfg, CPU, fold=False)
    x = torch.randint(0, 256, (2, 3, 32, 32), dtype=torch.uint8)
    torch.testing.assert_close(folded.logits(x), plain.logits(x), atol=1e-4, rtol=1e-4)


@pytest.fixture(scope="module")
def tiny_tiles(tmp_path_factory) -> Path:
    from fcnlab.data.synthetic import make_segmentation_data

    root = tmp_path_factory.mktemp("tiles")
    make_segmentation_data(root, n_train=4, n_val=1, size=32)
    return root / "train"


@pytest.mark.slow
def test_bench_epoch_runs_the_engine_loop(tiny_tiles):
    case = models.ModelCase("fcn8s_resnet34", "segment", 32, 2, 2, 7)
    row = pipeline.bench_epoch(case, CPU, tiny_tiles, limit=0, repeats=1, cache="memory")
    assert row["images_per_epoch"] == 4 and row["batch"] == 2
    for key in ("loader_img_per_s", "e2e_img_per_s", "pure_img_per_s"):
        assert row[key] > 0
    assert row["e2e_over_pure"] == pytest.approx(row["e2e_img_per_s"] / row["pure_img_per_s"], rel=1e-2)
    assert row["projected_minutes_50_epochs_train_only"] > 0


def test_course_folders_names_what_is_missing(tmp_path):
    with pytest.raises(DataError, match="p1_data"):
        pipeline.course_folders(tmp_path)


@pytest.mark.realdata
def test_course_folders_on_the_real_data(dlcv_root):
    folders = pipeline.course_folders(dlcv_root)
    assert folders.p1_train.name == "train_50" and folders.p2_train.name == "train" and not folders.synthetic


@pytest.mark.slow
def test_run_measured_reports_the_child_not_the_parent():
    ballast = np.ones(256 * 2**20 // 8)  # this (parent) process holds 256 MiB more than a fresh python
    out = evaluator.run_measured([sys.executable, "-c", "print('mean_iou: 0.25')"])
    assert out["returncode"] == 0 and out["mean_iou"] == 0.25 and out["seconds"] > 0
    assert out["peak_rss_mb"] < 120  # the child's own peak, not inherited from this process
    failed = evaluator.run_measured([sys.executable, "-c", "import sys; sys.exit(3)"])
    assert failed["returncode"] == 3 and failed["mean_iou"] is None
    del ballast


def test_predictions_are_perturbed_copies(tmp_path):
    labels = evaluator.write_synthetic_masks(tmp_path / "gt", 3, size=64)
    n = evaluator.write_predictions(labels, tmp_path / "pred")
    assert n == 3 and sorted(p.name for p in (tmp_path / "pred").iterdir()) == [
        "0000_mask.png",
        "0001_mask.png",
        "0002_mask.png",
    ]
    result = evaluate_masks(labels, tmp_path / "pred")
    assert 0 < result.mean < 0.99  # related to the labels, not equal to them
    assert evaluate_masks(labels, labels).mean == pytest.approx(1.0)


@pytest.mark.slow
def test_bench_evaluator_agrees_with_the_course_script():
    ev = evaluator.bench_evaluator(None, n_synthetic=3)
    assert ev["masks"] == 3 and ev["source"] == "synthetic"
    assert set(ev["tools"]) == {"fcnlab_library", "course_script", "fcnlab_cli"}
    assert all(t["returncode"] == 0 for t in ev["tools"].values())
    assert ev["agree"] is True and ev["speedup_library"] > 0 and ev["speedup_cli"] > 0


def test_tsne_timing_section():
    out = pytest.importorskip("fcnlab.bench.tsne_time").bench_tsne(60, dim=64)
    assert out["points"] == 60 and out["dims"] == 64 and out["finite"] and out["seconds"] >= 0


def fake_result() -> dict:
    phase = {
        "img_per_s": 2.0,
        "step_ms": 500.0,
        "gflop_per_img": 1.5,
        "gflops_per_s": 3.0,
        "mfu": 0.5,
        "peak_gpu_mb": None,
        "peak_rss_mb": 900.0,
        "cpu_util": 0.9,
    }
    env = {
        "device": "cpu",
        "cpu_model": "Test CPU",
        "torch": "2.x",
        "torchvision": "0.x",
        "torch_threads": 2,
        "loadavg_start": [1.0, 1.0, 1.0],
        "loadavg_end": [2.0, 2.0, 2.0],
    }
    vgg = {
        "input": "3x32x32",
        "batch": 4,
        "eval_batch": 8,
        "amp": "fp32",
        "train": phase,
        "infer": phase,
        "infer_folded": {**phase, "img_per_s": 3.4},
        "folded_speedup": 1.7,
    }
    pipe = {
        "input": "3x64x64",
        "batch": 2,
        "images_per_epoch": 8,
        "loader_img_per_s": 500.0,
        "e2e_img_per_s": 1.8,
        "pure_img_per_s": 2.0,
        "e2e_over_pure": 0.9,
        "decode_seconds": 0.1,
        "projected_minutes_50_epochs_train_only": 750.0,
    }

    def tool(seconds: float, rss: float) -> dict:
        return {"seconds": seconds, "masks_per_s": round(257 / seconds, 1), "peak_rss_mb": rss, "mean_iou": 0.5}

    ev = {
        "masks": 257,
        "source": "real",
        "speedup_library": 12.0,
        "speedup_cli": 4.0,
        "agree": True,
        "tools": {
            "fcnlab_library": tool(2.0, 60.0),
            "fcnlab_cli": tool(6.0, 800.0),
            "course_script": tool(24.0, 1500.0),
        },
    }
    return {
        "quick": True,
        "errors": {"tsne": "RuntimeError: boom"},
        "env": env,
        "matmul_peak": {"gflops": 6.0, "median_gflops": 5.5, "dtype": "float32", "size": 512},
        "models": {"vgg16_bn": vgg},
        "pipeline": {"fcn8s_resnet34": pipe},
        "evaluator": ev,
    }


def test_comparisons_and_markdown():
    """Measurements are set beside the hardware and the peers, never graded against goals of the project."""
    result = fake_result()
    rows = {c["name"]: c for c in run._comparisons(result)}
    assert rows["P1 folded inference / unfolded, batch 8"]["against"].startswith("the unfolded model")
    assert rows["fcn8s_resnet34 end-to-end epoch / pure steps"]["value"] == 0.9
    assert "course's evaluator script" in rows["evaluator (cli) speed-up over the course script"]["against"]
    assert rows["evaluator (library) peak RSS MB on 257 masks"]["against"] == "the course's script: 1,500 MB"
    result["comparisons"] = list(rows.values())
    md = report.to_markdown(result)
    assert "| vgg16_bn | inference, folded | 3x32x32 | 8 | fp32 | 3.40 |" in md
    assert "Matmul peak (float32, 512x512): 6.0 GFLOP/s" in md
    assert "| fcn8s_resnet34 | 3x64x64 | 2 | 8 | 500 | 1.80 | 2.00 | 0.90 |" in md
    assert "| course_script | 24.00 | 10.7 | 1,500 | 0.500000 |" in md
    assert "Against the hardware and the peers:" in md and "NOT met" not in md and "goal" not in md
    assert "section tsne failed: RuntimeError: boom" in md
    assert "load average 1.0 at the start, 2.0 at the end" in md


@pytest.mark.slow
def test_cli_only_light_sections_writes_json_and_markdown(tmp_path, capsys):
    assert main(["bench", "--quick", "--device", "cpu", "--only", "matmul,tsne", "--out", str(tmp_path)]) == 0
    data = json.loads((tmp_path / "bench.json").read_text())
    assert data["sections"] == ["matmul", "tsne"] and data["quick"] is True and not data["errors"]
    assert data["matmul_peak"]["gflops"] > 0 and data["tsne"]["points"] == 200
    assert data["command"] == f"fcnlab bench --quick --device cpu --only matmul,tsne --out {tmp_path}"
    assert (tmp_path / "bench.md").read_text() in capsys.readouterr().out


def test_cli_without_out_prints_json_on_stdout(capsys):
    assert main(["bench", "--quick", "--device", "cpu", "--only", "matmul"]) == 0
    out = capsys.readouterr()
    assert json.loads(out.out)["sections"] == ["matmul"]
    assert "Matmul peak" in out.err


def test_cli_errors_are_one_line(tmp_path, capsys):
    assert main(["bench", "--only", "nope"]) == 2
    assert "unknown section 'nope'" in capsys.readouterr().err
    assert main(["bench", "--quick", "--data", str(tmp_path), "--only", "tsne"]) == 2
    assert f"--data {tmp_path}" in capsys.readouterr().err


@pytest.mark.slow
def test_quick_bench_emits_valid_json_for_every_section(tmp_path, capsys):
    code = main(["bench", "--quick", "--device", "cpu", "--threads", "1", "--out", str(tmp_path)])
    data = json.loads((tmp_path / "bench.json").read_text())
    assert code == 0 and not data["errors"], data["errors"]
    assert data["sections"] == list(run.SECTIONS)
    assert set(data["models"]) == set(run.MODEL_SECTIONS)
    assert data["models"]["vgg16_bn"]["folded_speedup"] > 0
    assert set(data["pipeline"]) == {"vgg16_bn", "fcn8s_resnet34"}
    assert data["evaluator"]["agree"] is True and data["tsne"]["finite"]
    assert {c["name"] for c in data["comparisons"]} >= {"P1 folded inference / unfolded, batch 8"}
