"""The report loads the runs' checkpoints: parameter counts, inference speed measured here, and the same
validation tiles predicted by each P2 model side by side (two tiny runs trained on synthetic tiles)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from fcnlab.data.synthetic import make_segmentation_data
from fcnlab.report import write_report
from fcnlab.report.checkpoints import measure_runs
from fcnlab.report.runs import load_runs
from train_once import segment_train_argv, train_once

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    root = tmp_path_factory.mktemp("compare")
    data = make_segmentation_data(root / "data", n_train=4, n_val=4, size=64)
    out = []
    for model, extra in (
        ("fcn32s_resnet34", []),
        ("fcn8s_resnet34", ["--snapshot-epochs", "1", "--snapshot-images", "0002_sat.jpg,0001"]),
    ):
        run = root / model
        assert (
            train_once(
                segment_train_argv(data, run, *extra, model=model, epochs=1),
                root / "cache",
            )
            == 0
        )
        out.append(run)
    return out


def test_env_json_records_provenance(runs):
    env = json.loads((runs[0] / "env.json").read_text())
    assert env["fcnlab"] and env["device"] == "cpu" and env["torch"] == torch.__version__
    assert env["command"].startswith("fcnlab segment train --data ") and "--model fcn32s_resnet34" in env["command"]
    assert env["git_commit"] is None or re.fullmatch(r"[0-9a-f]{40}", env["git_commit"])


def test_measure_counts_parameters_and_predicts_the_same_tiles(runs):
    facts = measure_runs(load_runs(runs), device="cpu", tiles=2)
    assert facts.device.startswith("cpu (") and facts.notes == [] and facts.missing == []
    from fcnlab.models import build_model

    for m, name in zip(facts.models, ("fcn32s_resnet34", "fcn8s_resnet34"), strict=True):
        assert m.model == name and m.params == sum(p.numel() for p in build_model(name, 7).parameters())
        assert m.input_shape == (1, 3, 64, 64) and m.seconds_per_batch > 0
    # the tiles of the homework's snapshot figure (recorded by the second run), in the order chosen
    assert facts.tiles is not None and facts.tiles.names == ["0002_sat.jpg", "0001_sat.jpg"]
    evenly = measure_runs(load_runs(runs[:1] * 2), device="cpu", tiles=2)  # no names recorded: evenly spaced
    assert evenly.tiles is not None and evenly.tiles.names == ["0000_sat.jpg", "0003_sat.jpg"]
    assert list(facts.tiles.predictions) == ["fcn32s_resnet34", "fcn8s_resnet34"]
    for masks in facts.tiles.predictions.values():
        assert [m.shape for m in masks] == [(64, 64), (64, 64)] and all(m.max() < 7 for m in masks)


def test_report_shows_models_and_tiles_and_renders_in_chromium(runs, tmp_path):
    out = tmp_path / "report.html"
    result = write_report(runs, out, device="cpu")
    page = out.read_text()
    assert "The same validation tiles, predicted by each model" in page
    assert "2 validation tiles predicted by fcn32s_resnet34, fcn8s_resnet34" in page
    assert re.search(r"<td>fcn8s_resnet34</td><td>fcn8s_resnet34</td><td class=\"num\">[\d,]+</td>", page)
    assert "measured when this report was written, on cpu (" in page
    script = REPO / "scripts" / "check_report_browser.py"
    if shutil.which("chromium") is None:
        pytest.skip("no chromium for the browser check")
    shot = tmp_path / "shot.png"
    done = subprocess.run(
        [sys.executable, str(script), str(out), "--screenshot", str(shot)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0 and f"{result.images} images, 0 broken" in done.stdout, done.stdout + done.stderr


def test_without_checkpoints_the_report_says_so(runs, tmp_path):
    moved = tmp_path / "copy"
    shutil.copytree(runs[0], moved / "a", ignore=shutil.ignore_patterns("*.pt"))
    result = write_report([moved / "a", runs[1]], tmp_path / "r.md", device="cpu")
    text = (tmp_path / "r.md").read_text()
    assert "no best.pt or last.pt in the run folder of a: no parameter count, speed or predictions for it" in text
    assert "not drawn: no best.pt or last.pt in the run folder of a" in text and result.images > 0
