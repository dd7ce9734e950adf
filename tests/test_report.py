"""fcnlab report: run folders read correctly, self-contained HTML with decodable images, Markdown, bad input,
and a real headless-browser check of the page (skipped only when no Chromium is installed)."""

from __future__ import annotations

import base64
import importlib.util
import io
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from fcnlab.cli.main import main
from fcnlab.errors import ConfigError, DataError
from fcnlab.report import load_run, write_report
from fcnlab.report.runs import best_epoch, unique_names
from report_runs import make_run, png

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "scripts" / "check_report_browser.py"


def _images(page: str) -> list[Image.Image]:
    """Decode every <img> of a page; each must be an inline data URI."""
    sources = re.findall(r'<img src="([^"]*)"', page)
    decoded = []
    for src in sources:
        assert src.startswith("data:image/png;base64,"), src[:40]
        img = Image.open(io.BytesIO(base64.b64decode(src.split(",", 1)[1])))
        img.load()
        decoded.append(img)
    return decoded


# --------------------------------------------------------------------------------------------- run folders
def test_segment_run_uses_best_epoch_of_metrics(tmp_path: Path) -> None:
    run = load_run(make_run(tmp_path, "fcn8s"))
    assert run.task == "segment" and run.model == "fcn8s_resnet34" and run.epochs_done == 3
    assert run.best_epoch == 2 and run.source == "metrics.csv, best epoch 2 on data not recorded, TTA none"
    assert run.per_class_iou == pytest.approx([0.6, 0.85, 0.3, 0.7, 0.75, 0.5])
    assert run.miou == pytest.approx(3.7 / 6, abs=1e-6)
    assert sorted(run.snapshots) == [1, 3] and run.all_epochs is not None and run.confusion is not None
    assert [row["train_seconds"] for row in run.timing] == [10.0, 11.0, 12.0]
    assert run.env["gpu"] == "NVIDIA H100" and run.model_txt.startswith("FCN8S_RESNET34(")


def test_eval_json_wins_and_gives_pixel_accuracy(tmp_path: Path) -> None:
    ev = {
        "task": "segment",
        "data": "val",
        "per_class_iou": [0.1, 0.2, 0.3, 0.4, 0.5, 0.6],
        "mean_iou": 0.35,
        "confusion_matrix": [[6, 2], [0, 2]],
    }
    run = load_run(make_run(tmp_path, "r", eval_json=ev))
    assert run.per_class_iou == [0.1, 0.2, 0.3, 0.4, 0.5, 0.6] and run.miou == 0.35
    assert run.val_acc == pytest.approx(0.8) and run.source.startswith("eval (older layout) on val")


def test_classify_run_and_task_without_config(tmp_path: Path) -> None:
    folder = make_run(tmp_path, "p1", task="classify", accs=(0.4, 0.8, 0.8))
    run = load_run(folder)
    assert run.task == "classify" and run.best_epoch == 2 and run.val_acc == pytest.approx(0.8)
    assert run.tsne is not None and run.per_class_iou is None
    (folder / "config.yaml").unlink()
    assert load_run(folder).task == "classify"
    seg = make_run(tmp_path, "p2")
    (seg / "config.yaml").unlink()
    assert load_run(seg).task == "segment"


def test_best_epoch_skips_nan_and_keeps_first_tie() -> None:
    import numpy as np

    metrics = {"epoch": np.array([1.0, 2.0, 3.0, 4.0]), "val_acc": np.array([np.nan, 0.7, 0.7, 0.6])}
    assert best_epoch(metrics, "classify") == 2
    assert best_epoch({"epoch": np.array([1.0]), "val_acc": np.array([np.nan])}, "classify") is None


def test_unique_names() -> None:
    assert unique_names([Path("/r/a/run"), Path("/r/b/run"), Path("/r/c")]) == ["a/run", "b/run", "c"]
    assert unique_names([Path("/r/a"), Path("/r/a")]) == ["r/a", "r/a#2"]


@pytest.mark.parametrize(
    ("file", "content", "message"),
    [
        ("metrics.csv", "epoch,val_acc\n1,abc\n", "metrics.csv: line 2, column 'val_acc'"),
        ("eval/eval.json", "{not json", "eval.json: not valid JSON"),
        ("eval/eval.json", '{"task": "classify", "val_acc": 0.5}', "holds a classify evaluation"),
        ("eval/eval.json", '{"task": "segment", "per_class_iou": [0.1]}', "'per_class_iou' must list"),
        ("config.yaml", "task: [unclosed", "config.yaml: not valid YAML"),
        ("config.yaml", "task: detect", "config.yaml: task 'detect' is not one of"),
        ("timing.csv", "epoch,train_seconds\n1,fast\n", "timing.csv: line 2, column 'train_seconds'"),
        ("env.json", "[1, 2]", "env.json: expected a JSON object"),
    ],
)
def test_bad_files_raise_one_data_error_naming_them(tmp_path: Path, file: str, content: str, message: str) -> None:
    run = make_run(tmp_path, "r")
    (run / file).parent.mkdir(exist_ok=True)
    (run / file).write_text(content)
    with pytest.raises(DataError, match=re.escape(message)):
        load_run(run)


def test_not_a_run_folder(tmp_path: Path) -> None:
    (tmp_path / "x").mkdir()
    (tmp_path / "f.txt").write_text("hi")
    with pytest.raises(DataError, match="x: not an fcnlab run folder"):
        load_run(tmp_path / "x")
    with pytest.raises(DataError, match="f.txt: is not a folder"):
        load_run(tmp_path / "f.txt")


# ---------------------------------------------------------------------------------------------------- HTML
@pytest.mark.slow
def test_html_report_is_self_contained_and_complete(tmp_path: Path) -> None:
    a = make_run(tmp_path, "fcn32s", epochs_ious=[[0.5, 0.8, 0.2, 0.6, 0.7, 0.4]])
    b = make_run(tmp_path, "fcn8s", epochs_ious=[[0.7, 0.9, 0.4, 0.8, 0.85, 0.6]])
    c = make_run(tmp_path, "vgg <b>&", task="classify")
    out = tmp_path / "out" / "report.html"
    result = write_report([a, b, c], out)
    assert result.format == "html" and result.warnings == []
    page = out.read_text()
    assert sorted(p.name for p in out.parent.iterdir()) == ["report.html"]  # nothing else written
    assert "vgg &lt;b&gt;&amp;" in page and "vgg <b>" not in page  # escaped
    assert not re.search(r'(src|href)="(?!data:|#)', page)  # no external resource
    images = _images(page)
    # per seg run: curves, IoU curves, confusion, masks; cls run: curves, confusion, t-SNE;
    # comparison of the seg runs: per-class IoU bars, mIoU curves of both runs
    assert len(images) == result.images == 13
    assert all(img.width > 0 for img in images)
    assert "Comparison: P2 segmentation" in page
    assert re.search(
        r"<td>2 rangeland</td><td class=\"num\">0.2000</td><td class=\"num\">0.4000</td>"
        r"<td class=\"num\">\+0.2000</td>",
        page,
    )
    assert "Val Acc: 0.700000" in page  # P1 best epoch
    assert "<details><summary>model.txt: print(model) of vgg16_bn" in page
    assert "out_features=&lt;50&gt;" in page  # architecture printout, escaped
    assert "NVIDIA H100 (CUDA 13.2)" in page and "39.0 s" in page  # hardware and total time (12 + 13 + 14 s)
    assert "Per-class IoU, side by side" in page and "Validation mIoU per epoch" in page
    # no checkpoints in these fake runs: said, not failed
    assert "no best.pt or last.pt in the run folder of fcn32s, fcn8s, vgg &lt;b&gt;&amp;: no parameter" in page
    assert "not drawn: no best.pt or last.pt in the run folder of fcn32s, fcn8s: no parameter count" in page
    assert '<h2 id="provenance">Provenance</h2>' in page


@pytest.mark.slow
def test_homework_deliverables_hold_the_seed_printouts_and_figures(tmp_path: Path) -> None:
    a = make_run(tmp_path, "fcn32s", epochs_ious=[[0.5, 0.8, 0.2, 0.6, 0.7, 0.4]])
    b = make_run(
        tmp_path,
        "fcn8s",
        eval_json={"task": "segment", "mean_iou": 0.5, "per_class_iou": [0.5, 0.9, 0.1, 0.6, 0.7, 0.2]},
    )
    c = make_run(tmp_path, "p1", task="classify")
    out = tmp_path / "r.md"
    write_report([a, b, c], out, checkpoints=False)
    text = out.read_text()
    section = text[text.index("## Homework deliverables") : text.index("## Comparison")]
    course = "\n".join(f"class #{i} : {v:.5f}" for i, v in enumerate([0.5, 0.9, 0.1, 0.6, 0.7, 0.2]))
    assert f"```text\n{course}\n\nmean_iou: 0.500000\n```" in section  # the course's printout, verbatim
    assert "```text\nVal Acc: 0.700000\n```" in section
    assert "### P2 fcn32s: predicted masks at epochs 1, 3" in section and "run1\\_masks.png" not in section
    assert "![fcn32s: masks at epochs 1, 3" in section and "![p1: t-SNE" in section
    assert "### P2: fcn32s vs fcn8s" in section and "| 2 rangeland | 0.2000 | 0.1000 | -0.1000 |" in section
    # shown once: the run sections point to the deliverables instead of repeating the figures
    assert text.count("![p1: t-SNE") == 1 and text.count("![fcn32s: masks at epochs") == 1


def test_every_deliverable_a_task_lists_is_one_the_report_shows() -> None:
    from fcnlab.report.document import DELIVERABLES, ReportBuilder
    from fcnlab.tasks import INFO

    for info in INFO.values():
        assert info.deliverables, info.name
        for item in info.deliverables:
            assert callable(getattr(ReportBuilder, DELIVERABLES[item])), (info.name, item)


def test_per_class_accuracy_provenance_and_print_css(tmp_path: Path) -> None:
    per_class = [0.1 * (i % 10) for i in range(50)]
    run = make_run(
        tmp_path, "p1", task="classify", eval_json={"task": "classify", "val_acc": 0.45, "per_class_acc": per_class}
    )
    env = json.loads((run / "env.json").read_text())
    env.update(
        {
            "fcnlab": "9.9.9",
            "git_commit": "0123456789abcdef",
            "git_dirty": True,
            "device": "cuda:0 (X)",
            "command": "fcnlab classify train --config p1_vgg16bn --out runs/p1",
        }
    )
    (run / "env.json").write_text(json.dumps(env))
    result = write_report([run], tmp_path / "r.html", checkpoints=False)
    page = (tmp_path / "r.html").read_text()
    assert result.images == 4  # curves, per-class accuracy, confusion, t-SNE
    assert "Per-class accuracy" in page and "the 5 lowest and highest per-class accuracies" in page
    assert re.search(
        r"<tr><td class=\"num\">0</td><td class=\"num\">0.000</td><td class=\"num\">49</td>"
        r"<td class=\"num\">0.900</td></tr>",
        page,
    )
    row = (
        "<td>p1</td><td>9.9.9</td><td>0123456789+changes</td><td>2.15.0</td><td>cuda:0 (X)</td>"
        "<td>fcnlab classify train --config p1_vgg16bn --out runs/p1</td>"
    )
    assert row in page
    assert "not measured: the report was written with --no-checkpoints" in page
    assert "break-after: avoid" in page and "break-inside: avoid" in page
    # every heading is in one box with the block after it
    assert re.search(r'<div class="keep"><h3>Per-class accuracy</h3>\n<figure>', page)


def test_two_p1_runs_compare_curves_and_per_class_accuracy(tmp_path: Path) -> None:
    runs = [
        make_run(
            tmp_path,
            name,
            task="classify",
            accs=accs,
            eval_json={"task": "classify", "val_acc": accs[-1], "per_class_acc": [accs[-1]] * 50},
        )
        for name, accs in (("a", (0.5, 0.6)), ("b", (0.4, 0.7)))
    ]
    write_report(runs, tmp_path / "r.html", checkpoints=False)
    page = (tmp_path / "r.html").read_text()
    assert "Validation accuracy per epoch" in page and "Per-class accuracy, side by side" in page


def test_missing_and_unreadable_figures_become_notes(tmp_path: Path) -> None:
    run = make_run(tmp_path, "p1", task="classify", extras=False)
    (run / "tsne.png").write_bytes(b"\x89PNG\r\n\x1a\nbroken")
    result = write_report([run], tmp_path / "r.html")
    page = (tmp_path / "r.html").read_text()
    assert len(result.warnings) == 1 and "tsne.png: skipped" in result.warnings[0]
    assert "no confusion matrix: run &#x27;fcnlab classify eval" in page
    assert len(_images(page)) == result.images == 1  # only the training curves


def test_markdown_report_writes_images_beside_it(tmp_path: Path) -> None:
    run = make_run(tmp_path, "fcn8s")
    out = tmp_path / "docs" / "report.md"
    result = write_report([run], out)
    text = out.read_text()
    links = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", text)
    assert result.format == "md" and len(links) == result.images == 4
    for link in links:
        Image.open(out.parent / link).load()
    assert {p.name for p in (out.parent / "report_files").iterdir()} == {Path(x).name for x in links}
    assert "| 2 | rangeland | 0.30000 |" in text
    assert "<details><summary>model.txt" in text


def test_output_never_overwrites_an_input(tmp_path: Path) -> None:
    run = make_run(tmp_path, "r")
    before = (run / "model.txt").read_bytes()
    with pytest.raises(ConfigError, match="would overwrite .*model.txt, an input of run"):
        write_report([run], run / "model.txt", fmt="html")
    assert (run / "model.txt").read_bytes() == before
    with pytest.raises(ConfigError, match="is a folder"):
        write_report([run], tmp_path)
    with pytest.raises(ConfigError, match="option --format"):
        write_report([run], tmp_path / "x.html", fmt="pdf")


def test_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = make_run(tmp_path, "r")
    assert main(["report", str(run), "--out", str(tmp_path / "r.md"), "--format", "html", "--title", "T"]) == 0
    assert "<title>T</title>" in (tmp_path / "r.md").read_text()
    assert "wrote" in capsys.readouterr().out
    assert main(["report", str(tmp_path / "nothing"), "--out", str(tmp_path / "x.html")]) == 2
    assert "nothing: does not exist" in capsys.readouterr().err


# ------------------------------------------------------------------------------------------------- browser
def _browser_script():
    spec = importlib.util.spec_from_file_location("check_report_browser", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def chromium() -> str:
    found = _browser_script().find_chromium()
    if found is None:
        pytest.skip(
            "no Chromium binary (chromium, chromium-browser, google-chrome or $CHROMIUM) on this machine; "
            "install it with 'apt-get install -y chromium' to run the browser check"
        )
    return found


def test_report_renders_in_headless_chromium(tmp_path: Path, chromium: str) -> None:
    runs = [make_run(tmp_path, "fcn32s"), make_run(tmp_path, "p1", task="classify")]
    out = tmp_path / "report.html"
    result = write_report(runs, out)
    shot = tmp_path / "shot.png"
    done = subprocess.run(
        [sys.executable, str(SCRIPT), str(out), "--screenshot", str(shot)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"{result.images} images, 0 broken" in done.stdout
    with Image.open(shot) as img:
        assert img.width == 1280 and img.height > 1000
        assert len(img.convert("L").getcolors(1 << 16)) > 10  # a rendered page, not a blank one


def test_browser_check_fails_on_a_broken_image(tmp_path: Path, chromium: str) -> None:
    good = base64.b64encode(png(tmp_path / "beside.png").read_bytes()).decode()
    page = tmp_path / "page.html"
    page.write_text(
        f'<html><body><img src="data:image/png;base64,{good}"><img src="data:image/png;base64,AAAA">'
        f'<img src="beside.png"></body></html>'
    )
    done = subprocess.run(
        [sys.executable, str(SCRIPT), str(page), "--screenshot", str(tmp_path / "s.png")],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 1, done.stdout + done.stderr
    assert "3 images, 2 broken" in done.stdout  # beside.png is not found: the page is not self-contained
    assert "broken image 1:" in done.stdout and "broken image 2:" in done.stdout
