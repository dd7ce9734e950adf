"""The bad-input matrix: every command, every kind of surprise in a data folder.

One table-driven test per row of the matrix; each is parametrised over the commands it applies to. A data
or usage error must give exit code 2 and exactly one line ``fcnlab: error: ...`` that names the file or
option (and the fix), never a traceback; inputs in other modes (grayscale, RGBA, palette, 16-bit) are
converted, not rejected. The base folders are a few real course files (P2 tiles cropped to 64x64)
copied into a temporary folder; commands run in-process through :func:`fcnlab.cli.main.main` (the exit code
and stderr are exactly what the ``fcnlab`` program produces; one subprocess check confirms it).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from fcnlab.checkpoint import save_checkpoint
from fcnlab.cli.main import main
from fcnlab.config import from_dict
from fcnlab.data.images import read_rgb
from fcnlab.errors import FcnlabError
from fcnlab.models import build_model
from fcnlab.recipes import save_yaml

pytestmark = pytest.mark.realdata

P1_CLASSES = 3  # real p1 images of labels 0..2
TILE = 64  # real p2 tiles are cropped to 64x64


# ------------------------------------------------------------------------------------------ fixtures
@dataclass
class World:
    """Valid base folders and checkpoints that each row copies and damages."""

    root: Path
    p1_train: Path
    p1_val: Path
    p2_train: Path
    p2_val: Path
    ckpt_cls: Path
    ckpt_seg: Path
    run: Path  # a minimal run folder for compare/report


def _fresh_checkpoint(path: Path, task: str, model: str, num_classes: int, **cfg) -> Path:
    torch.manual_seed(0)
    config = from_dict({"task": task, "model": model, "num_classes": num_classes, "device": "cpu", **cfg})
    save_checkpoint(
        path,
        task=task,
        model_name=model,
        num_classes=num_classes,
        model=build_model(model, num_classes).state_dict(),
        config=config.to_dict(),
        epoch=0,
    )
    return path


@pytest.fixture(scope="module")
def world(dlcv_root, tmp_path_factory) -> World:
    root = tmp_path_factory.mktemp("bad_inputs")
    p1 = dlcv_root / "p1_data"
    for split, src, indices in (("train", "train_50", range(3)), ("val", "val_50", range(450, 452))):
        (root / "p1" / split).mkdir(parents=True)
        for label in range(P1_CLASSES):
            for i in indices:
                shutil.copy(p1 / src / f"{label}_{i}.png", root / "p1" / split / f"{label}_{i}.png")
    p2 = dlcv_root / "p2_data"
    for split, src, stems in (("train", "train", ("0000", "0001")), ("val", "validation", ("0000", "0001"))):
        (root / "p2" / split).mkdir(parents=True)
        for stem in stems:  # crops keep both the JPEG tile and the lossless mask formats of the course
            Image.open(p2 / src / f"{stem}_sat.jpg").crop((0, 0, TILE, TILE)).save(
                root / "p2" / split / f"{stem}_sat.jpg", quality=95
            )
            Image.open(p2 / src / f"{stem}_mask.png").convert("RGB").crop((0, 0, TILE, TILE)).save(
                root / "p2" / split / f"{stem}_mask.png"
            )
    ckpt_cls = _fresh_checkpoint(root / "cls.pt", "classify", "resnet18", P1_CLASSES, batch_size=4)
    ckpt_seg = _fresh_checkpoint(root / "seg.pt", "segment", "fcn32s_resnet34", 7, batch_size=2)
    run = root / "run"
    save_yaml(from_dict({"task": "classify", "model": "resnet18", "num_classes": P1_CLASSES}), run / "config.yaml")
    (run / "metrics.csv").write_text(
        "epoch,lr,train_loss,train_acc,val_loss,val_acc,val_miou\n1,0.010000,1.000000,0.500000,1.000000,0.500000,\n"
    )
    return World(
        root,
        root / "p1" / "train",
        root / "p1" / "val",
        root / "p2" / "train",
        root / "p2" / "val",
        ckpt_cls,
        ckpt_seg,
        run,
    )


# ------------------------------------------------------------------------------------------ commands
@dataclass(frozen=True)
class Command:
    """One command of the matrix: which base folder it reads and how its arguments are built."""

    name: str
    kind: str  # p1 (labelled images), p2 (tile/mask pairs), masks (predicted masks), run (run folder)
    argv: Callable[[World, Path, Path], list[str]]  # (world, input folder, scratch folder) -> argv

    def __str__(self) -> str:
        return self.name


CPU = ["--device", "cpu"]
STREAM = [*CPU, "--workers", "0"]
P1_TRAIN = [
    "--model",
    "resnet18",
    "--num-classes",
    str(P1_CLASSES),
    "--epochs",
    "1",
    "--batch-size",
    "3",
    "--lr",
    "0.01",
    "--cache",
    "off",
    *CPU,
]
P2_TRAIN = [
    "--model",
    "fcn32s_resnet34",
    "--image-size",
    str(TILE),
    "--epochs",
    "1",
    "--batch-size",
    "2",
    "--cache",
    "off",
    *CPU,
]

COMMANDS = {
    c.name: c
    for c in (
        Command(
            "classify-train",
            "p1",
            lambda w, d, o: [
                "classify",
                "train",
                "--data",
                str(d),
                "--val",
                str(w.p1_val),
                "--out",
                str(o / "run"),
                *P1_TRAIN,
            ],
        ),
        Command(
            "classify-eval",
            "p1",
            lambda w, d, o: ["classify", "eval", "--ckpt", str(w.ckpt_cls), "--data", str(d), *STREAM],
        ),
        Command(
            "classify-predict",
            "p1",
            lambda w, d, o: [
                "classify",
                "predict",
                "--ckpt",
                str(w.ckpt_cls),
                "--images",
                str(d),
                "--out",
                str(o / "pred.csv"),
                *STREAM,
            ],
        ),
        Command(
            "classify-tsne",
            "p1",
            lambda w, d, o: [
                "classify",
                "tsne",
                "--ckpt",
                str(w.ckpt_cls),
                "--data",
                str(d),
                "--out",
                str(o / "tsne.png"),
                *STREAM,
            ],
        ),
        Command(
            "segment-train",
            "p2",
            lambda w, d, o: [
                "segment",
                "train",
                "--data",
                str(d),
                "--val",
                str(w.p2_val),
                "--out",
                str(o / "run"),
                *P2_TRAIN,
            ],
        ),
        Command(
            "segment-eval",
            "p2",
            lambda w, d, o: ["segment", "eval", "--ckpt", str(w.ckpt_seg), "--data", str(d), *STREAM],
        ),
        Command(
            "segment-predict",
            "p2",
            lambda w, d, o: [
                "segment",
                "predict",
                "--ckpt",
                str(w.ckpt_seg),
                "--images",
                str(d),
                "--out",
                str(o / "masks"),
                *STREAM,
            ],
        ),
        Command(
            "miou", "masks", lambda w, d, o: ["miou", "--labels", str(w.p2_val), "--pred", str(d), "--workers", "1"]
        ),
        Command("compare", "run", lambda w, d, o: ["compare", str(w.run), str(d)]),
        Command("report", "run", lambda w, d, o: ["report", str(w.run), str(d), "--out", str(o / "report.html")]),
    )
}

ALL = tuple(COMMANDS)
DATA = tuple(n for n, c in COMMANDS.items() if c.kind != "run")


def commands(*names: str) -> list:
    """Parametrisation over commands."""
    return [pytest.param(COMMANDS[n], id=n) for n in names]


def base_folder(world: World, cmd: Command, dest: Path) -> Path:
    """A private, valid copy of the folder that ``cmd`` reads (its masks for ``miou``)."""
    if cmd.kind == "p1":
        shutil.copytree(world.p1_train, dest)
    elif cmd.kind == "p2":
        shutil.copytree(world.p2_train, dest)
    elif cmd.kind == "masks":  # predictions = the validation label masks (a perfect prediction)
        dest.mkdir()
        for m in world.p2_val.glob("*_mask.png"):
            shutil.copy(m, dest / m.name)
    else:
        shutil.copytree(world.run, dest)
    return dest


def first_image(folder: Path, cmd: Command) -> Path:
    """The file a row damages: an image (P1), a satellite tile (P2), a mask (miou), metrics.csv (runs)."""
    if cmd.kind == "p1":
        return sorted(folder.glob("*.png"))[0]
    if cmd.kind == "p2":
        return folder / "0000_sat.jpg"
    if cmd.kind == "masks":
        return folder / "0000_mask.png"
    return folder / "metrics.csv"


def run_cli(argv: list[str], capsys) -> tuple[int, str, str]:
    """Run fcnlab in-process; return (exit code, stdout, stderr)."""
    try:
        code = main(argv)
    except SystemExit as e:  # argparse's own usage errors
        code = e.code
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_line_error(code: int, out: str, err: str, *names: str) -> str:
    """Exit 2, one ``fcnlab: error:`` line on stderr naming every one of ``names``, no traceback."""
    assert "Traceback" not in out + err
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2, (code, out, err)
    assert len(lines) == 1 and lines[0].startswith("fcnlab: error: "), err
    for name in names:
        assert name in lines[0], (name, lines[0])
    return lines[0]


def check_error(world: World, cmd: Command, tmp_path: Path, capsys, damage: Callable[[Path], str | Path]) -> str:
    """Copy the base folder, ``damage`` it (returns the name the message must mention), run, check."""
    folder = base_folder(world, cmd, tmp_path / "input")
    name = damage(folder)
    code, out, err = run_cli(cmd.argv(world, folder, tmp_path / "out"), capsys)
    return assert_one_line_error(code, out, err, Path(name).name)


# ------------------------------------------------------------------------------------------ the rows
@pytest.mark.parametrize("cmd", commands(*ALL))
def test_nonexistent_path(world, cmd, tmp_path, capsys):
    missing = tmp_path / "no_such_folder"
    code, out, err = run_cli(cmd.argv(world, missing, tmp_path / "out"), capsys)
    line = assert_one_line_error(code, out, err, "no_such_folder")
    assert "does not exist" in line


@pytest.mark.parametrize("cmd", commands(*ALL))
def test_empty_folder(world, cmd, tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    code, out, err = run_cli(cmd.argv(world, empty, tmp_path / "out"), capsys)
    assert_one_line_error(code, out, err, "empty")


@pytest.mark.parametrize("cmd", commands(*ALL))
def test_unreadable_file(world, cmd, tmp_path, capsys, monkeypatch):
    def damage(folder: Path) -> Path:
        target = first_image(folder, cmd)
        target.chmod(0)
        if os.geteuid() == 0:  # root reads mode-000 files anyway: make the open fail as it would for a user
            real_open = open

            def guarded(file, *args, **kwargs):
                if isinstance(file, (str, Path)) and Path(file).resolve() == target.resolve():
                    raise PermissionError(13, "Permission denied", str(file))
                return real_open(file, *args, **kwargs)

            monkeypatch.setattr("builtins.open", guarded)
            monkeypatch.setattr(Path, "read_text", lambda self, *a, **k: guarded(self).read(), raising=True)
        return target

    line = check_error(world, cmd, tmp_path, capsys, damage)
    assert "permission denied" in line.lower()


@pytest.mark.parametrize("cmd", commands(*DATA))
def test_zero_byte_file(world, cmd, tmp_path, capsys):
    def damage(folder: Path) -> Path:
        target = first_image(folder, cmd)
        target.write_bytes(b"")
        return target

    assert "empty (0 bytes)" in check_error(world, cmd, tmp_path, capsys, damage)


@pytest.mark.parametrize("cmd", commands(*DATA))
def test_truncated_image(world, cmd, tmp_path, capsys):
    def damage(folder: Path) -> Path:
        target = first_image(folder, cmd)  # a PNG (P1, masks) or a JPEG (P2 tiles)
        data = target.read_bytes()
        target.write_bytes(data[: len(data) // 2])
        return target

    assert "truncated" in check_error(world, cmd, tmp_path, capsys, damage)


@pytest.mark.parametrize("cmd", commands(*DATA))
def test_text_file_named_png(world, cmd, tmp_path, capsys):
    def damage(folder: Path) -> Path:
        if cmd.kind == "p1":
            target = folder / "0_9.png"
        elif cmd.kind == "p2":  # a tile that is text, with a real mask so that it is paired
            target = folder / "0005_sat.png"
            shutil.copy(folder / "0000_mask.png", folder / "0005_mask.png")
        else:
            target = folder / "0000_mask.png"
        target.write_text("this is not an image\n")
        return target

    assert "not an image file" in check_error(world, cmd, tmp_path, capsys, damage)


def _convert(path: Path, mode: str, dest: Path | None = None) -> None:
    """Rewrite an image as PNG in ``mode``: L, RGBA, P (palette) or I;16 (16-bit grayscale)."""
    rgb = Image.open(path).convert("RGB")
    if mode == "I;16":
        img = Image.fromarray(np.asarray(rgb.convert("L"), dtype=np.uint16) * 257)
    elif mode == "P":
        img = rgb.quantize(colors=256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
    else:
        img = rgb.convert(mode)
    dest = dest or path.with_suffix(".png")
    if dest != path:
        path.unlink()
    img.save(dest)
    assert Image.open(dest).mode == mode


MODES = ("L", "RGBA", "P", "I;16")


@pytest.mark.parametrize("cmd", commands(*DATA))
def test_grayscale_rgba_palette_16bit_are_converted(world, cmd, tmp_path, capsys):
    folder = base_folder(world, cmd, tmp_path / "input")
    if cmd.kind == "p1":  # one image per mode
        for path, mode in zip(sorted(folder.glob("*.png")), MODES, strict=False):
            _convert(path, mode)
    elif cmd.kind == "p2":  # tiles and masks in other modes; masks stay exact (palette / RGBA keep colours)
        _convert(folder / "0000_sat.jpg", "L", folder / "0000_sat.png")
        _convert(folder / "0001_sat.jpg", "I;16", folder / "0001_sat.png")
        _convert(folder / "0000_mask.png", "P")
        _convert(folder / "0001_mask.png", "RGBA")
    else:
        _convert(folder / "0000_mask.png", "P")
        _convert(folder / "0001_mask.png", "RGBA")
    code, out, err = run_cli(cmd.argv(world, folder, tmp_path / "out"), capsys)
    assert code == 0, err
    assert "Traceback" not in out + err
    if cmd.name == "miou":  # palette/RGBA copies of the labels decode to the very same classes
        scores = [line.split(":")[1].strip() for line in out.splitlines() if line.startswith("class #")]
        assert len(scores) == 6 and set(scores) <= {"1.00000", "nan"} and "1.00000" in scores, out
    if cmd.name == "classify-predict":
        rows = (tmp_path / "out" / "pred.csv").read_text().splitlines()
        assert rows[0] == "image_id,label" and len(rows) == 1 + len(list(folder.glob("*.png")))


def test_grayscale_16bit_keeps_the_high_byte(tmp_path):
    """16-bit grayscale PNGs become the 8-bit image a viewer shows (high byte), not a saturated one."""
    gray = np.array([[0, 257 * 100, 65535]], dtype=np.uint16)
    Image.fromarray(gray).save(tmp_path / "g16.png")
    assert read_rgb(tmp_path / "g16.png")[0, :, 0].tolist() == [0, 100, 255]


@pytest.mark.slow
@pytest.mark.parametrize("cmd", commands("segment-predict"))
def test_huge_image_is_predicted_in_tiles_with_bounded_memory(world, cmd, tmp_path):
    """A 10000x10000 image: predicted tile by tile; peak memory stays far below an untiled pass.

    An untiled forward pass would hold the float input (1.2 GB) and float logits (2.8 GB) of the whole
    image. The model is swapped for a per-pixel stand-in so that the test measures fcnlab, not ResNet FLOPs.
    """
    images, out = tmp_path / "images", tmp_path / "masks"
    images.mkdir()
    big = Image.new("RGB", (10_000, 10_000), (60, 120, 60))
    big.paste((200, 200, 200), (0, 0, 5000, 5000))
    big.save(images / "mosaic_sat.jpg", quality=90)
    del big
    script = (
        "import sys, torch\n"
        "import fcnlab.infer.predictor as inf\n"
        "seen = []\n"
        "class Tiny(torch.nn.Module):  # 7 'class scores' per pixel, as cheap as it gets\n"
        "    def forward(self, x):\n"
        "        seen.append(max(x.shape[-2:])); return torch.cat([x, -x, x[:, :1]], 1)\n"
        "inf.model_from_checkpoint = lambda ckpt, dev: Tiny().to(dev).eval()\n"
        "from fcnlab.cli.main import main\n"
        "code = main(sys.argv[1:])\n"
        "print('largest window', max(seen), 'windows', len(seen))\n"
        "sys.exit(code)\n"
    )
    argv = [
        "segment",
        "predict",
        "--ckpt",
        str(world.ckpt_seg),
        "--images",
        str(images),
        "--out",
        str(out),
        "--device",
        "cpu",
        "--workers",
        "0",
    ]
    log = tmp_path / "log.txt"
    with open(log, "w") as f:
        proc = subprocess.Popen(
            [sys.executable, "-c", script, *argv],
            stdout=f,
            stderr=subprocess.STDOUT,
            env={**os.environ, "FCNLAB_CACHE": str(tmp_path / "cache")},
        )
        _, status, usage = os.wait4(proc.pid, 0)  # reaps the child and gives its own peak memory
    proc.returncode = os.waitstatus_to_exitcode(status)
    output = log.read_text()
    assert proc.returncode == 0, output
    assert "Traceback" not in output
    assert "largest window 1024 " in output  # the default --tile
    assert int(output.split("windows")[1].split()[0]) >= 100
    mask = read_rgb(out / "mosaic_mask.png")  # fcnlab's reader allows 100-megapixel images
    assert mask.shape == (10_000, 10_000, 3)
    # grey quarter -> class 2 (purple), green rest -> class 3 (green), also across tile seams (896 px cores)
    for y, x in ((0, 0), (100, 4000), (895, 896), (4900, 1792)):
        assert mask[y, x].tolist() == [255, 0, 255], (y, x)
    for y, x in ((9_999, 9_999), (5_100, 896), (896, 9_000), (7_168, 7_167)):
        assert mask[y, x].tolist() == [0, 255, 0], (y, x)
    peak = usage.ru_maxrss * 1024  # kilobytes on Linux
    assert peak < 2.5e9, f"peak RSS {peak / 1e9:.2f} GB"


@pytest.mark.parametrize("cmd", commands("segment-train", "segment-eval", "miou"))
def test_mask_of_another_size(world, cmd, tmp_path, capsys):
    def damage(folder: Path) -> Path:
        target = folder / "0000_mask.png"
        Image.open(target).resize((TILE // 2, TILE // 2), Image.NEAREST).save(target)
        return target

    line = check_error(world, cmd, tmp_path, capsys, damage)
    assert f"{TILE // 2}x{TILE // 2}" in line


@pytest.mark.parametrize("cmd", commands("segment-train", "segment-eval", "miou"))
def test_jpeg_compressed_mask(world, cmd, tmp_path, capsys):
    def damage(folder: Path) -> Path:
        png = folder / "0000_mask.png"
        target = folder / "0000_mask.jpg"
        Image.open(png).convert("RGB").save(target, quality=75)
        png.unlink()
        return target

    assert "lossless" in check_error(world, cmd, tmp_path, capsys, damage)


@pytest.mark.parametrize("cmd", commands("segment-train", "segment-eval", "miou"))
def test_unpaired_tiles_and_masks(world, cmd, tmp_path, capsys):
    def damage(folder: Path) -> str:
        (folder / "0001_mask.png").unlink()
        if cmd.name == "miou":  # a label mask without its prediction
            return "0001_mask.png"
        return "0001_sat.jpg"  # a tile without its mask

    check_error(world, cmd, tmp_path, capsys, damage)


@pytest.mark.parametrize("cmd", commands("classify-train", "classify-eval", "classify-tsne"))
def test_labels_out_of_range(world, cmd, tmp_path, capsys):
    def damage(folder: Path) -> Path:
        target = folder / f"{P1_CLASSES + 4}_3.png"
        shutil.copy(sorted(folder.glob("*.png"))[0], target)
        return target

    line = check_error(world, cmd, tmp_path, capsys, damage)
    assert "out of range" in line and f"{P1_CLASSES} classes" in line


@pytest.mark.parametrize("cmd", commands("classify-train", "segment-train"))
def test_unknown_config_key(world, cmd, tmp_path, capsys):
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text("epochs: 1\nlearning_rate: 0.1\n")
    folder = base_folder(world, cmd, tmp_path / "input")
    code, out, err = run_cli([*cmd.argv(world, folder, tmp_path / "out"), "--config", str(recipe)], capsys)
    line = assert_one_line_error(code, out, err, "recipe.yaml", "learning_rate", "valid keys:", "batch_size")
    assert "learning_rate (did you mean lr?)" in line


INVALID = (
    [
        (name, option, value)
        for name in ("classify-train", "segment-train")
        for option, value in (("--lr", "-0.1"), ("--batch-size", "0"), ("--epochs", "two"), ("--device", "gpu7"))
    ]
    + [
        (name, option, value)
        for name in ("classify-eval", "classify-predict", "classify-tsne", "segment-eval", "segment-predict")
        for option, value in (("--batch-size", "0"), ("--workers", "-1"))
    ]
    + [("segment-predict", "--tile", "100"), ("miou", "--workers", "0")]
)


@pytest.mark.parametrize(("name", "option", "value"), INVALID, ids=[f"{n}{o}={v}" for n, o, v in INVALID])
def test_invalid_numbers(world, name, option, value, tmp_path, capsys):
    cmd = COMMANDS[name]
    folder = base_folder(world, cmd, tmp_path / "input")
    code, out, err = run_cli([*cmd.argv(world, folder, tmp_path / "out"), option, value], capsys)
    assert code == 2 and "Traceback" not in out + err
    last = err.strip().splitlines()[-1]
    assert "error" in last and option in last, err
    assert_one_line_error(code, out, err, option)
    assert not (tmp_path / "out" / "run").exists()


# ------------------------------------------------------------------------------------- nothing is lost
@pytest.mark.parametrize("cmd", commands("segment-predict", "classify-train", "segment-train"))
def test_out_equal_to_input_folder_is_refused(world, cmd, tmp_path, capsys):
    folder = base_folder(world, cmd, tmp_path / "input")
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    argv = cmd.argv(world, folder, tmp_path / "out")
    argv[argv.index("--out") + 1] = str(folder)
    code, out, err = run_cli(argv, capsys)
    assert_one_line_error(code, out, err, "--out", str(folder))
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before


@pytest.mark.parametrize(
    ("cmd", "target"),
    [
        (COMMANDS["classify-predict"], "0_0.png"),
        (COMMANDS["classify-tsne"], "0_0.png"),
        (COMMANDS["classify-tsne"], "new_plot.png"),
    ],
)
def test_output_file_never_overwrites_or_lands_in_the_inputs(world, cmd, target, tmp_path, capsys):
    folder = base_folder(world, cmd, tmp_path / "input")
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    argv = cmd.argv(world, folder, tmp_path / "out")
    argv[argv.index("--out") + 1] = str(folder / target)
    code, out, err = run_cli(argv, capsys)
    assert_one_line_error(code, out, err, "--out", target)
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before


def test_predict_into_another_data_folder_is_refused(world, tmp_path, capsys):
    """Predicting tiles of one folder into a folder of tiles and label masks would replace its labels."""
    labels = tmp_path / "validation"
    shutil.copytree(world.p2_val, labels)
    before = {p.name: p.read_bytes() for p in labels.iterdir()}
    code, o, err = run_cli(
        [
            "segment",
            "predict",
            "--ckpt",
            str(world.ckpt_seg),
            "--images",
            str(world.p2_train),
            "--out",
            str(labels),
            *STREAM,
        ],
        capsys,
    )
    assert_one_line_error(code, o, err, "--out", "data folder")
    assert {p.name: p.read_bytes() for p in labels.iterdir()} == before


@pytest.mark.parametrize("cmd", commands("segment-predict", "classify-train"))
def test_out_that_cannot_be_created_is_one_line(world, cmd, tmp_path, capsys):
    """An --out below a plain file: the OS's reason in one line (the engine's and the commands' check)."""
    blocker = tmp_path / "file.txt"
    blocker.write_text("mine")
    folder = base_folder(world, cmd, tmp_path / "input")
    code, out, err = run_cli(cmd.argv(world, folder, blocker / "out"), capsys)
    assert_one_line_error(code, out, err, "--out", "cannot create the folder", "Not a directory")
    assert blocker.read_text() == "mine"


@pytest.mark.parametrize("argv", [["demo", "--quick"], ["bench", "--quick", "--only", "tsne"]], ids=["demo", "bench"])
def test_tool_out_that_cannot_be_created_is_one_line(argv, tmp_path, capsys):
    """Checked before any work: the bench would otherwise fail only when writing, minutes later."""
    blocker = tmp_path / "file.txt"
    blocker.write_text("mine")
    code, out, err = run_cli([*argv, "--out", str(blocker / "out")], capsys)
    assert_one_line_error(code, out, err, "--out", "cannot create the folder", "Not a directory")
    code, out, err = run_cli([*argv, "--out", str(blocker)], capsys)
    assert_one_line_error(code, out, err, "--out", str(blocker))
    assert blocker.read_text() == "mine"


def test_an_os_error_no_command_checked_is_one_line(monkeypatch, tmp_path, capsys):
    """The CLI's last resort for file-system errors (a full disk, say): the file and the OS's reason."""
    import fcnlab.report

    def full_disk(*args, **kwargs):
        raise OSError(28, "No space left on device", str(tmp_path / "report.html"))

    monkeypatch.setattr(fcnlab.report, "write_report", full_disk)
    code, out, err = run_cli(["report", str(tmp_path), "--out", str(tmp_path / "report.html")], capsys)
    line = assert_one_line_error(code, out, err, "report.html", "No space left on device")
    assert line == f"fcnlab: error: {tmp_path / 'report.html'}: No space left on device"
    with pytest.raises(OSError, match="No space"):  # --debug shows the traceback instead
        main(["--debug", "report", str(tmp_path), "--out", str(tmp_path / "report.html")])


def test_train_out_holding_other_files_is_refused(world, tmp_path, capsys):
    out = tmp_path / "out"
    (out / "run").mkdir(parents=True)
    (out / "run" / "notes.txt").write_text("mine")
    cmd = COMMANDS["classify-train"]
    code, o, err = run_cli(cmd.argv(world, world.p1_train, out), capsys)
    assert_one_line_error(code, o, err, "--out", "other files", "--resume")
    assert (out / "run" / "notes.txt").read_text() == "mine"


def test_predict_into_a_folder_with_other_files_leaves_them_alone(world, tmp_path, capsys):
    out = tmp_path / "out"
    (out / "sub").mkdir(parents=True)
    keep = {
        out / "notes.txt": b"my notes",
        out / "0000_mask_old.png": b"not touched",
        out / "sub" / "0000_mask.png": b"nested",
        out / "pred.csv": b"image_id,label\n",
    }
    for path, data in keep.items():
        path.write_bytes(data)
    stamps = {path: path.stat().st_mtime_ns for path in keep}
    code, o, err = run_cli(
        [
            "segment",
            "predict",
            "--ckpt",
            str(world.ckpt_seg),
            "--images",
            str(world.p2_val),
            "--out",
            str(out),
            *STREAM,
        ],
        capsys,
    )
    assert code == 0, err
    for path, data in keep.items():
        assert path.read_bytes() == data and path.stat().st_mtime_ns == stamps[path]
    assert sorted(p.name for p in out.glob("*_mask.png")) == ["0000_mask.png", "0001_mask.png"]
    assert not list(out.glob(".*")), "temporary files left behind"


# ---------------------------------------------------------------------------------- exit codes, --debug
def test_debug_raises_instead_of_printing(world, tmp_path):
    with pytest.raises(FcnlabError, match="no_such_folder"):
        main(
            [
                "--debug",
                "classify",
                "eval",
                "--ckpt",
                str(world.ckpt_cls),
                "--data",
                str(tmp_path / "no_such_folder"),
                *STREAM,
            ]
        )


def test_real_process_exit_code_and_traceback_only_with_debug(tmp_path):
    argv = [
        sys.executable,
        "-m",
        "fcnlab",
        "classify",
        "eval",
        "--ckpt",
        str(tmp_path / "missing.pt"),
        "--data",
        str(tmp_path),
    ]
    plain = subprocess.run(argv, capture_output=True, text=True, timeout=120)
    assert plain.returncode == 2
    assert plain.stderr.strip().splitlines() == [
        f"fcnlab: error: {tmp_path / 'missing.pt'}: checkpoint file does not exist; check the path"
    ]
    debug = subprocess.run(argv[:3] + ["--debug"] + argv[3:], capture_output=True, text=True, timeout=120)
    assert debug.returncode != 0 and "Traceback (most recent call last)" in debug.stderr
    assert "DataError" in debug.stderr
