"""fcnlab compare: per-class IoU side by side with deltas, P1 accuracy, sources, and refused inputs."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from fcnlab.cli.main import main
from fcnlab.errors import DataError
from fcnlab.report.compare import compare_runs, fmt_delta, fmt_value
from report_runs import make_run

FCN32 = [[0.5, 0.8, 0.2, 0.6, 0.7, 0.4], [0.6, 0.82, 0.30, 0.70, 0.75, 0.5]]
FCN8 = [[0.7, 0.9, 0.4, 0.8, 0.85, 0.6]]


def test_two_segmentation_runs_side_by_side_with_deltas(tmp_path: Path) -> None:
    a = make_run(tmp_path, "fcn32s", epochs_ious=FCN32)
    b = make_run(tmp_path, "fcn8s", epochs_ious=FCN8)
    comp = compare_runs([a, b])
    assert comp.task == "segment" and comp.runs == ["fcn32s", "fcn8s"]
    labels = [label for label, _ in comp.rows]
    assert labels == ["0 urban", "1 agriculture", "2 rangeland", "3 forest", "4 water", "5 barren", "mean IoU"]
    # run a: best epoch is 2 (higher val_miou), its row is used
    assert comp.rows[2][1] == pytest.approx([0.30, 0.4])
    assert comp.rows[-1][1][0] == pytest.approx(sum(FCN32[1]) / 6, abs=1e-6)
    header, body = comp.table()
    assert header == ["class", "fcn32s", "fcn8s", "Δ fcn8s"]
    assert body[0] == ["0 urban", "0.6000", "0.7000", "+0.1000"]
    assert body[1] == ["1 agriculture", "0.8200", "0.9000", "+0.0800"]
    text = comp.to_markdown()
    assert "| 2 rangeland | 0.3000 | 0.4000 | +0.1000 |" in text
    assert "- fcn32s: metrics.csv, best epoch 2" in text
    assert "- fcn8s: metrics.csv, best epoch 1" in text


def test_eval_json_is_preferred_and_nan_mean_falls_back(tmp_path: Path) -> None:
    ious = [0.61, 0.83, float("nan"), 0.72, 0.74, 0.52]
    a = make_run(
        tmp_path,
        "a",
        epochs_ious=FCN32,
        eval_json={
            "task": "segment",
            "data": "p2_data/validation",
            "per_class_iou": ious,
            "mean_iou": float("nan"),
            "confusion_matrix": [[3, 1], [1, 5]],
        },
    )
    b = make_run(tmp_path, "b", epochs_ious=FCN8)
    comp = compare_runs([a, b])
    # a's evaluation (older layout) and b's metrics.csv were measured on different data: two tables, no delta
    assert comp.groups == [[0], [1]]
    header, body = comp.table()
    assert header == ["class", "a"] and body[2] == ["2 rangeland", "nan"]
    mean_a = sum(v for v in ious if not math.isnan(v)) / 5
    assert comp.rows[-1][1][0] == pytest.approx(mean_a)
    text = comp.to_markdown()
    assert "- a: eval (older layout) on p2_data/validation, TTA none" in text
    assert "Δ" not in text and "not compared side by side" in text
    assert "class 2 (rangeland) absent" in text


def test_classification_runs_compare_accuracy(tmp_path: Path) -> None:
    a = make_run(tmp_path, "vgg", task="classify", accs=(0.5, 0.78, 0.7))
    b = make_run(tmp_path, "resnet", task="classify", accs=(0.81,))
    header, body = compare_runs([a, b]).table()
    assert header == ["metric", "vgg", "resnet", "Δ resnet"]
    assert body == [["val accuracy", "0.7800", "0.8100", "+0.0300"]]


def test_mixed_tasks_are_refused_naming_the_run(tmp_path: Path) -> None:
    seg = make_run(tmp_path, "seg")
    cls = make_run(tmp_path, "cls", task="classify")
    with pytest.raises(DataError, match=rf"{cls}: is a P1 classification run but {seg} is a P2"):
        compare_runs([seg, cls])


def test_not_a_run_folder(tmp_path: Path) -> None:
    good = make_run(tmp_path, "good")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="empty: not an fcnlab run folder"):
        compare_runs([good, tmp_path / "empty"])
    with pytest.raises(DataError, match="missing: does not exist"):
        compare_runs([good, tmp_path / "missing"])


def test_same_folder_names_are_told_apart(tmp_path: Path) -> None:
    a = make_run(tmp_path / "x", "run")
    b = make_run(tmp_path / "y", "run")
    assert compare_runs([a, b]).runs == ["x/run", "y/run"]


def test_formatting() -> None:
    assert fmt_value(0.123456) == "0.1235" and fmt_value(float("nan")) == "nan"
    assert fmt_delta(-0.01) == "-0.0100" and fmt_delta(0.0) == "+0.0000" and fmt_delta(float("nan")) == "n/a"


def test_cli_prints_and_writes_markdown(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    a = make_run(tmp_path, "fcn32s", epochs_ious=FCN32)
    b = make_run(tmp_path, "fcn8s", epochs_ious=FCN8)
    out = tmp_path / "compare.md"
    assert main(["compare", str(a), str(b), "--out", str(out), "--digits", "3"]) == 0
    printed = capsys.readouterr().out
    written = out.read_text()
    assert "| 0 urban | 0.600 | 0.700 | +0.100 |" in written
    assert printed.startswith(written)


def test_cli_errors_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    a = make_run(tmp_path, "a")
    before = (a / "metrics.csv").read_bytes()
    assert main(["compare", str(a), "--out", str(a / "metrics.csv")]) == 2
    assert (a / "metrics.csv").read_bytes() == before
    assert main(["compare", str(a), str(tmp_path / "nope")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[0].startswith("fcnlab: error: --out") and "input file" in err[0]
    assert err[1].startswith("fcnlab: error: ") and "nope: does not exist" in err[1]
