"""benchmarks/gpu_reproduce.sh and scripts/gpu_results.py: packing within the device tool's limits, unpacking
into docs/results/<hardware>/, the generated results table, and one tiny dry run end to end."""

from __future__ import annotations

import importlib.util
import json
import math
import os
import re
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "benchmarks" / "gpu_reproduce.sh"


def _load():
    spec = importlib.util.spec_from_file_location("gpu_results", REPO / "scripts" / "gpu_results.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules["gpu_results"] = mod
    spec.loader.exec_module(mod)
    return mod


gr = _load()


def fake_run(
    root: Path,
    name: str,
    task: str,
    *,
    epochs: int = 3,
    done: int = 3,
    gpu: str | None = "NVIDIA H200",
    extra: dict[str, bytes] | None = None,
    run_info: dict | None = None,
    final: float | None = None,
    config: str = "",
) -> Path:
    """A run folder as `fcnlab ... train` + eval + gpu_reproduce.sh leave it (checkpoints included)."""
    run = root / name
    (run / "eval").mkdir(parents=True)
    (run / "config.yaml").write_text(
        f"task: {task}\nmodel: {'vgg16_bn' if task == 'classify' else 'fcn8s_resnet34'}\n"
        f"epochs: {epochs}\npretrained: false\nlimit: 0\nimage_size: "
        f"{32 if task == 'classify' else 512}\n{config}"
    )
    key = "val_acc" if task == "classify" else "val_miou"
    rows = [
        f"{e},0.1,1.0,0.5,1.0,0.5,{0.1 * e:.6f}" if key == "val_miou" else f"{e},0.1,1.0,0.5,1.0,{0.1 * e:.6f},"
        for e in range(1, done + 1)
    ]
    header = "epoch,lr,train_loss,train_acc,val_loss,val_acc,val_miou\n"
    (run / "metrics.csv").write_text(header + "\n".join(rows) + "\n")
    (run / "timing.csv").write_text(
        "epoch,train_seconds,epoch_seconds,train_img_per_s\n"
        + "".join(f"{e},10.0,12.0,{100.0 * e}\n" for e in range(1, done + 1))
    )
    env = {"cuda": gpu is not None, "cpu_count": 16}
    if gpu:
        env["gpu"] = gpu
    (run / "env.json").write_text(json.dumps(env))
    if final is not None:
        (run / "eval" / "eval.json").write_text(
            json.dumps({"val_acc": final} if task == "classify" else {"mean_iou": final})
        )
    (run / "last.pt").write_bytes(b"x" * 1000)
    (run / "best.pt").write_bytes(b"x" * 1000)
    (run / "run.json").write_text(
        json.dumps(
            {
                "recipe": name,
                "status": "done",
                "train_wall_s": 125,
                "sharing": 2,
                "command": f"RECIPES={name} benchmarks/gpu_reproduce.sh $D $OUT",
                **(run_info or {}),
            }
        )
    )
    for rel, data in (extra or {}).items():
        (run / rel).parent.mkdir(parents=True, exist_ok=True)
        (run / rel).write_bytes(data)
    return run


def test_pack_stays_within_the_device_limits_and_leaves_checkpoints_out(tmp_path):
    work = tmp_path / "work"
    for i in range(3):
        fake_run(work / "runs", f"p1_r{i}", "classify")
    for i in range(8):  # more P2 runs than archives: the surplus is merged
        fake_run(work / "runs", f"p2_r{i}", "segment", extra={"snapshots/epoch_005.png": b"png" * 100})
    big = os.urandom(3 * 2**20)  # incompressible: over the per-file limit below
    fake_run(work / "runs", "p2_big", "segment", extra={"tsne.npz": big})
    (work / "reproduce").mkdir()
    (work / "reproduce" / "log.txt").write_text("log\n")
    out = tmp_path / "out"
    written = gr.pack(work, out, max_files=8, max_mib=16, max_file_mib=2)
    files = sorted(out.iterdir())
    assert len(files) == len(written) <= 8
    assert all(re.match(r"^[A-Za-z0-9._-]+$", f.name) and f.is_file() for f in files)
    assert all(f.stat().st_size <= 16 * 2**20 for f in files)
    names: list[str] = []
    for f in files:
        with tarfile.open(f) as tar:
            names += tar.getnames()
    assert not [n for n in names if n.endswith(".pt")]
    runs = {n.split("/")[0] for n in names}
    assert runs == {f"p1_r{i}" for i in range(3)} | {f"p2_r{i}" for i in range(8)} | {"p2_big", "reproduce"}
    assert "p2_big/tsne.npz" not in names and "p2_big/DROPPED.txt" in names
    assert "p1_r0/metrics.csv" in names and "p2_r3/snapshots/epoch_005.png" in names
    # a run repacked alone rewrites only its own archive
    before = {f.name: f.stat().st_mtime_ns for f in files}
    (work / "runs" / "p1_r1" / "extra.txt").write_text("later\n")
    (only,) = gr.pack(work, out, only="p1_r1")
    assert only.name == "p1.tar.gz" and sorted(f.name for f in out.iterdir()) == sorted(before)
    with tarfile.open(only) as tar:
        assert "p1_r1/extra.txt" in tar.getnames()


def test_an_archive_over_the_limit_drops_its_largest_files_with_a_note(tmp_path):
    work = tmp_path / "work"
    fake_run(work / "runs", "p2_x", "segment", extra={"a.bin": os.urandom(60_000), "b.bin": os.urandom(30_000)})
    (archive,) = gr.pack(work, tmp_path / "out", max_mib=50_000 / 2**20, max_file_mib=1)
    assert archive.stat().st_size <= 50_000
    with tarfile.open(archive) as tar:
        names = tar.getnames()
        note = tar.extractfile("p2_x/DROPPED.txt").read().decode()
    assert "p2_x/a.bin" not in names and "p2_x/b.bin" in names and "a.bin" in note


def test_unpack_sorts_runs_by_hardware_and_regenerates_the_table(tmp_path):
    work = tmp_path / "work"
    fake_run(work / "runs", "p1_vgg16bn", "classify", epochs=50, done=50, final=0.7301)
    fake_run(
        work / "runs", "p2_fcn8s_resnet34", "segment", epochs=50, done=30, final=0.6123, run_info={"status": "partial"}
    )
    fake_run(work / "runs", "p1_cpu_try", "classify", gpu=None, run_info={"dry_run": True})
    fake_run(work / "runs", "p2_budgeted", "segment", epochs=27, done=27, config="time_budget: 57.0\n")
    out = tmp_path / "out"
    archives = gr.pack(work, out)
    dest = tmp_path / "docs" / "results"
    readme = tmp_path / "README.md"
    readme.write_text(f"# x\n\nbefore\n\n{gr.BEGIN}\nold table\n{gr.END}\n\nafter\n")
    assert gr.main(["unpack", *map(str, archives), "--dest", str(dest), "--readme", str(readme)]) == 0
    assert (dest / "h200" / "p1_vgg16bn" / "metrics.csv").is_file()
    assert (dest / "cpu-dry-run" / "p1_cpu_try" / "metrics.csv").is_file()
    assert not list(dest.rglob("*.pt"))
    text = readme.read_text()
    assert text.startswith("# x\n\nbefore\n\n") and text.endswith(f"{gr.END}\n\nafter\n") and "old table" not in text
    rows = {line.split(" | ")[1]: line for line in text.splitlines() if line.startswith("| P")}
    assert "acc 0.7301" in rows["p1_vgg16bn"] and "1x NVIDIA H200, shared with 2 other runs" in rows["p1_vgg16bn"]
    assert (
        "mIoU 0.6123" in rows["p2_fcn8s_resnet34"]
        and "30 of 50 epochs, cut by the time budget" in rows["p2_fcn8s_resnet34"]
    )
    assert "27 epochs (`--time-budget 57`)" in rows["p2_budgeted"] and "budget" not in rows["p1_vgg16bn"]
    assert "2 min 5 s wall" in rows["p1_vgg16bn"] and "2,600 img/s" in rows["p1_vgg16bn"]  # median of epochs 2-50
    assert "(docs/results/h200/p1_vgg16bn/)" in rows["p1_vgg16bn"]
    assert "p1_cpu_try" not in rows  # dry runs stay out of the README unless asked for
    assert (
        "not yet run" in rows["p2_fcn32s_vgg16"]
        and "`RECIPES=p2_fcn32s_vgg16 benchmarks/gpu_reproduce.sh $D $OUT`" in rows["p2_fcn32s_vgg16"]
    )
    table = gr.results_table(dest, gr.read_recipes(REPO / "benchmarks" / "gpu_recipes.tsv"), include_dry_runs=True)
    assert "p1_cpu_try" in table and "CPU (16 cores), dry run" in table


def test_unpack_refuses_unsafe_members_and_bad_readmes(tmp_path, capsys):
    evil = tmp_path / "evil.tar.gz"
    with tarfile.open(evil, "w:gz") as tar:
        f = tmp_path / "x.txt"
        f.write_text("x")
        tar.add(f, arcname="../escape.txt")
    assert gr.main(["unpack", str(evil), "--dest", str(tmp_path / "d"), "--no-table"]) == 2
    assert "not a plain relative file" in capsys.readouterr().err
    assert not (tmp_path / "escape.txt").exists()
    readme = tmp_path / "R.md"
    readme.write_text("no markers\n")
    assert gr.main(["table", "--results", str(tmp_path / "d"), "--readme", str(readme)]) == 2
    assert "results:begin" in capsys.readouterr().err and readme.read_text() == "no markers\n"


def test_sharing_counts_the_runs_that_overlapped_each_run(tmp_path):
    work = tmp_path / "work"
    spans = {"a": (0, 100), "b": (1, 50), "c": (60, 200), "d": (300, 400)}
    for name, (s0, e0) in spans.items():
        fake_run(work / "runs", name, "segment", run_info={"started_s": s0, "ended_s": e0, "sharing": 0})
    gr.pack(work, tmp_path / "out")
    got = {n: json.loads((work / "runs" / n / "run.json").read_text())["sharing"] for n in spans}
    assert got == {"a": 2, "b": 1, "c": 1, "d": 0}


def test_hardware_slugs():
    assert gr.hardware_slug({"cuda": True, "gpu": "NVIDIA H200"}) == "h200"
    assert gr.hardware_slug({"cuda": True, "gpu": "NVIDIA H100 80GB HBM3"}) == "h100"
    assert gr.hardware_slug({"cuda": False}) == "cpu"
    assert gr.hardware_slug({"cuda": False}, dry_run=True) == "cpu-dry-run"


def test_the_committed_readme_table_is_the_generated_one():
    """No number in the README's results table is typed by hand: regenerating it changes nothing."""
    readme = (REPO / "README.md").read_text()
    table = gr.results_table(REPO / "docs" / "results", gr.read_recipes(REPO / "benchmarks" / "gpu_recipes.tsv"))
    body = readme.split(gr.BEGIN, 1)[1].split(gr.END, 1)[0]
    assert body.split("\n", 2)[2] == table


def test_bad_usage_is_one_line_exit_2(tmp_path):
    env = {**os.environ, "PYTHON": sys.executable}
    r = subprocess.run(["bash", str(SCRIPT), str(tmp_path)], capture_output=True, text=True, env=env)
    assert r.returncode == 2 and "Usage" in r.stderr
    r = subprocess.run(
        ["bash", str(SCRIPT), str(tmp_path / "nodata"), str(tmp_path / "out")],
        capture_output=True,
        text=True,
        env={**env, "WORK": str(tmp_path / "w")},
    )
    assert r.returncode == 2 and "expected p1_data/ and p2_data/" in r.stderr


def synthetic_parts(tmp_path: Path) -> Path:
    """Synthetic course-layout data split into several parts by benchmarks/gpu_data_parts.sh."""
    from fcnlab.data.synthetic import make_classification_data, make_segmentation_data

    data = tmp_path / "dlcv"
    make_classification_data(data / "p1_data", num_classes=50, train_per_class=1, val_per_class=1)
    make_segmentation_data(data / "p2_data", n_train=3, n_val=2, size=64)
    parts = tmp_path / "parts"
    subprocess.run(
        ["bash", str(REPO / "benchmarks" / "gpu_data_parts.sh"), str(data), str(parts), "100k"],
        check=True,
        capture_output=True,
    )
    assert len(list(parts.glob("*/dlcv.tar.part-*"))) >= 2
    return parts


def test_a_missing_data_part_is_named(tmp_path):
    parts = synthetic_parts(tmp_path)
    shutil.rmtree(parts / "01")
    env = {**os.environ, "PYTHON": sys.executable, "WORK": str(tmp_path / "work")}
    r = subprocess.run(
        ["bash", str(SCRIPT), str(parts), str(tmp_path / "out")], capture_output=True, text=True, env=env
    )
    assert r.returncode == 2 and "data part dlcv.tar.part-01 is missing" in r.stderr


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("timeout") is None, reason="needs coreutils' timeout")
def test_dry_run_end_to_end_on_synthetic_data(tmp_path):
    """One tiny real training run through the script, from data parts: reassemble, train, eval, snapshots,
    pack; then unpack and table."""
    parts = synthetic_parts(tmp_path)
    out = tmp_path / "out"
    env = {
        **os.environ,
        "PYTHON": sys.executable,
        "WORK": str(tmp_path / "work"),
        "OMP_NUM_THREADS": "1",
        "RECIPES": "p2_fcn8s_resnet34 p9_missing",
        "PYTHONPATH": str(REPO / "src"),
    }
    r = subprocess.run(
        ["bash", str(SCRIPT), "--dry-run", str(parts), str(out)], capture_output=True, text=True, env=env, timeout=600
    )
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert "skip p9_missing: no recipe file" in r.stdout
    assert sorted(f.name for f in out.iterdir()) == ["p2_fcn8s_resnet34.tar.gz", "reproduce.tar.gz"]
    dest = tmp_path / "results"
    readme = tmp_path / "README.md"
    readme.write_text(f"{gr.BEGIN}\n{gr.END}\n")
    assert (
        gr.main(
            [
                "unpack",
                *map(str, sorted(out.iterdir())),
                "--dest",
                str(dest),
                "--readme",
                str(readme),
                "--include-dry-runs",
            ]
        )
        == 0
    )
    run = dest / "cpu-dry-run" / "p2_fcn8s_resnet34"
    info = json.loads((run / "run.json").read_text())
    assert info["status"] == "done" and info["dry_run"] is True
    assert {p.name for p in (run / "snapshots").glob("*.png")} >= {"epoch_001.png", "epoch_002.png"}
    assert (dest / "cpu-dry-run" / "reproduce" / "schedule.tsv").is_file()
    miou = json.loads((run / "eval" / "validation" / "eval.json").read_text())["mean_iou"]
    row = next(line for line in readme.read_text().splitlines() if "| p2_fcn8s_resnet34 |" in line)
    if math.isnan(miou):  # a class absent from the 2 validation tiles: the table shows training's val_miou
        assert re.search(r"\*\*mIoU \d\.\d{4}\*\* \(best epoch \d, metrics.csv\)", row), row
    else:
        assert f"**mIoU {miou:.4f}** (`eval` of best.pt" in row
