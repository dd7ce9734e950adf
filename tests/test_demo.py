"""``fcnlab demo``: a quick run of every step through the CLI, and the output-folder safety rules."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import torch

from fcnlab.cli.main import build_parser, main
from fcnlab.demo import (
    FULL,
    MARKER,
    QUICK,
    DemoLayout,
    DemoStepFailed,
    Step,
    csv_accuracy,
    majority_miou,
    plan_steps,
    prepare_demo_dir,
    run_demo,
    run_step,
)
from fcnlab.errors import ConfigError

#: runs the whole demo: the full suite's, not the fast lane's (-m "not slow and not realdata")
pytestmark = pytest.mark.slow


@pytest.fixture(autouse=True)
def _isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    """Per-test disk cache folder; the thread count must be the same after each test."""
    monkeypatch.setenv("FCNLAB_CACHE", str(tmp_path / "cache"))
    previous = torch.get_num_threads()
    yield
    assert torch.get_num_threads() == previous
    torch.set_num_threads(previous)


def test_quick_demo_runs_every_step_through_the_cli(tmp_path: Path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), "--quick"]) == 0
    text = capsys.readouterr().out
    steps = plan_steps(DemoLayout(out, QUICK))
    for step in steps:  # each command is printed before it runs
        assert f"$ fcnlab {' '.join(step.argv)}" in text
    assert "Val Acc: " in text and "mean_iou: " in text
    layout = DemoLayout(out, QUICK)
    p1 = layout.p1_run
    for f in ("best.pt", "eval/validation/eval.json", "predictions.csv", "tsne.png", "tsne.npz"):
        assert (p1 / f).is_file(), f
    with open(p1 / "predictions.csv", newline="") as f:
        assert len(list(csv.DictReader(f))) == QUICK.p1_classes * QUICK.p1_val_per_class
    for run in layout.p2_runs:
        snapshots = sorted(p.name for p in (run / "snapshots").glob("epoch_*.png"))
        assert snapshots == ["epoch_001.png", "epoch_002.png"]
        assert sorted(p.name for p in (run / "masks").iterdir()) == ["0000_mask.png", "0001_mask.png"]
        assert (run / "eval" / "validation" / "per_class_iou.md").is_file()
    assert (out / "compare.md").is_file()
    assert (out / "report.html").is_file()
    summary = (out / "summary.md").read_text()
    assert "fcnlab demo finished" in summary and str(p1 / "tsne.png") in summary
    assert text.rstrip().endswith(summary.split("```")[1].strip().splitlines()[-1])  # summary printed last
    assert json.loads((out / MARKER).read_text())["format"] == "fcnlab-demo"
    # why the demo's FCNs are not the homework's VGG16-BN pair, and "next" commands that work offline
    assert "not the homework's VGG16-BN FCN-32s vs ResNet34 FCN-8s: its FCN-32s has 134M parameters" in text
    nexts = [line.split("#")[0].split()[1:] for line in text.splitlines() if line.startswith("  fcnlab ")]
    assert nexts and all("--no-pretrained" in argv for argv in nexts)
    for argv in nexts:
        args = build_parser("reproduce").parse_args(argv)
        assert args.command == "reproduce" and args.pretrained is False


def test_every_step_parses_with_the_real_cli(tmp_path: Path):
    parser = build_parser()
    for plan in (FULL, QUICK):
        steps = plan_steps(DemoLayout(tmp_path / "demo", plan))
        assert [s.argv[0] for s in steps[:4]] == ["classify"] * 4
        for step in steps:
            args = parser.parse_args(step.argv)
            assert callable(args.func)
        trains = [s.argv for s in steps if s.argv[:2] == ["segment", "train"]]
        assert len(trains) == 2
        for argv in trains:
            snaps = argv[argv.index("--snapshot-epochs") + 1].split(",")
            assert snaps and all(1 <= int(e) <= plan.p2_epochs for e in snaps)


def test_full_demo_uses_a_light_p1_model_and_two_fcn_heads():
    assert FULL.p1_model == "resnet18"
    assert {m.split("_")[0] for m in FULL.p2_models} == {"fcn32s", "fcn8s"}
    assert FULL.p2_size % 32 == 0 and QUICK.p2_size % 32 == 0


def test_refuses_a_folder_with_other_files(tmp_path: Path, capsys):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "thesis.tex").write_text("precious")
    assert main(["demo", "--out", str(out), "--quick"]) == 2
    err = capsys.readouterr().err
    assert "thesis.tex" in err and "not an earlier demo folder" in err
    assert sorted(p.name for p in out.iterdir()) == ["thesis.tex"]
    assert (out / "thesis.tex").read_text() == "precious"


def test_refuses_a_file_as_output(tmp_path: Path):
    path = tmp_path / "demo"
    path.write_text("x")
    with pytest.raises(ConfigError, match="not a folder"):
        run_demo(path, QUICK)
    assert path.read_text() == "x"


def test_rerun_replaces_only_a_previous_demo(tmp_path: Path):
    out = tmp_path / "demo"
    layout = DemoLayout(out, QUICK)
    prepare_demo_dir(out, layout)
    (out / "data" / "p1").mkdir(parents=True)
    (out / "data" / "p1" / "old.png").write_bytes(b"old")
    layout.p1_run.mkdir()
    (layout.p1_run / "last.pt").write_bytes(b"old")
    (out / "summary.md").write_text("old")
    (out / ".summary.md.tmp123.md").write_text("left by a crash")
    prepare_demo_dir(out, layout)
    assert sorted(p.name for p in out.iterdir()) == [MARKER]


def test_refuses_a_previous_demo_folder_with_added_files(tmp_path: Path):
    out = tmp_path / "demo"
    layout = DemoLayout(out, QUICK)
    prepare_demo_dir(out, layout)
    layout.p1_run.mkdir()
    (layout.p1_run / "last.pt").write_bytes(b"run")
    (out / "notes.txt").write_text("mine")
    with pytest.raises(ConfigError, match="notes.txt"):
        prepare_demo_dir(out, layout)
    assert (out / "notes.txt").read_text() == "mine" and (layout.p1_run / "last.pt").read_bytes() == b"run"


def test_never_follows_a_symlink_in_a_demo_folder(tmp_path: Path):
    user_data = tmp_path / "user_data"
    user_data.mkdir()
    (user_data / "keep.png").write_bytes(b"keep")
    out = tmp_path / "demo"
    layout = DemoLayout(out, QUICK)
    prepare_demo_dir(out, layout)
    (out / "data").symlink_to(user_data, target_is_directory=True)
    with pytest.raises(ConfigError, match="data"):
        prepare_demo_dir(out, layout)
    assert (user_data / "keep.png").read_bytes() == b"keep"


def test_a_fake_marker_does_not_make_a_folder_deletable(tmp_path: Path):
    out = tmp_path / "demo"
    out.mkdir()
    (out / MARKER).write_text("not json")
    (out / "data").mkdir()
    with pytest.raises(ConfigError, match="not an earlier demo folder"):
        prepare_demo_dir(out, DemoLayout(out, QUICK))
    assert (out / "data").is_dir()


def test_failed_step_stops_the_demo_with_its_exit_code(tmp_path: Path, capsys):
    step = Step("eval a missing run", ["classify", "eval", "--ckpt", str(tmp_path / "nope"), "--data", str(tmp_path)])
    with pytest.raises(DemoStepFailed, match="demo step 3/9 failed with exit code 2") as info:
        run_step(step, 3, 9)
    assert info.value.exit_code == 2
    assert "fcnlab: error: " in capsys.readouterr().err


def test_csv_accuracy_and_majority_baseline(tmp_path: Path):
    gt, pred = tmp_path / "gt.csv", tmp_path / "pred.csv"
    gt.write_text("filename,label\na.png,0\nb.png,1\nc.png,2\nd.png,2\n")
    pred.write_text("image_id,label\na.png,0\nb.png,2\nc.png,2\nd.png,2\n")
    assert csv_accuracy(pred, gt) == 0.75
    conf = [[0] * 7 for _ in range(7)]
    conf[1][1], conf[3][1], conf[6][6] = 60, 30, 10  # rows: labels; 60% agriculture, 10% unknown
    value, cls = majority_miou(conf)
    assert cls == 1 and value == pytest.approx(0.6 / 6)


def test_invalid_thread_count_is_refused(tmp_path: Path):
    with pytest.raises(ConfigError, match="--threads"):
        run_demo(tmp_path / "demo", QUICK, threads=-1)
    assert not (tmp_path / "demo").exists()
