"""Output names derived from input names never collide: two inputs that would give one output file are refused
before anything is written, naming both and the fix; names that cannot collide are checked to stay distinct.

The commands run for real on tiny images with the tiny models of the old checkpoints (tests/data/old_*.pt).
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from fcnlab.cli.main import main
from fcnlab.data.segmentation import pair_files
from fcnlab.data.subset import named_indices
from fcnlab.errors import ConfigError, DataError
from test_old_checkpoint import DATA, tiny_old_models  # noqa: F401 - an autouse fixture: the old checkpoints' models


def images(folder: Path, *names: str, size: int = 16) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for name in names:
        Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(folder / name)
    return folder


def one_error_line(code: int, capsys) -> str:
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert code == 2 and len(err) == 1 and err[0].startswith("fcnlab: error: "), (code, err)
    return err[0]


def segment_predict(folder: Path, out: Path, *extra: str) -> int:
    return main(
        [
            "segment",
            "predict",
            "--ckpt",
            str(DATA / "old_segment.pt"),
            "--images",
            str(folder),
            "--out",
            str(out),
            "--device",
            "cpu",
            "--workers",
            "0",
            *extra,
        ]
    )


@pytest.mark.parametrize(
    "names, says",
    [
        (("a.jpg", "a_sat.jpg"), "a.jpg and a_sat.jpg would both be predicted as a_mask.png"),
        (("a.jpg", "a.png"), "a.jpg and a.png would both be predicted as a_mask.png"),
        (("0002_sat.jpg", "0002_sat.png"), "0002_sat.jpg and 0002_sat.png share the name 0002_sat"),
    ],
)
def test_segment_predict_refuses_two_inputs_of_one_mask_name_before_writing(tmp_path, capsys, names, says):
    folder = images(tmp_path / "in", "b_sat.jpg", *names)
    out = tmp_path / "masks"
    line = one_error_line(segment_predict(folder, out, "--overlay"), capsys)
    assert says in line and "move" in line
    assert not out.exists()


def test_segment_predict_writes_one_mask_and_overlay_per_input(tmp_path, capsys):
    folder = images(tmp_path / "in", "a.jpg", "b_sat.jpg", "b_mask.png", "c_sat.png")
    out = tmp_path / "masks"
    assert segment_predict(folder, out, "--overlay") == 0
    assert "wrote 3 masks" in capsys.readouterr().out
    # overlays go apart from the masks, so 'fcnlab miou' on the folder reads masks only
    assert sorted(p.name for p in out.iterdir()) == ["a_mask.png", "b_mask.png", "c_mask.png", "overlays"]
    assert sorted(p.name for p in (out / "overlays").iterdir()) == [
        "a_overlay.jpg",
        "b_overlay.jpg",
        "c_overlay.jpg",
        "legend.png",
    ]


def test_training_pairs_refuse_two_tiles_of_one_stem(tmp_path):
    folder = images(tmp_path / "train", "0002_sat.jpg", "0002_sat.png", "0002_mask.png")
    with pytest.raises(DataError, match="0002_sat.jpg and 0002_sat.png share the name 0002_sat"):
        pair_files(folder)
    (folder / "0002_sat.png").unlink()
    images(folder, "0002_mask.jpg")
    with pytest.raises(DataError, match="0002_mask.jpg and 0002_mask.png share the name 0002_mask"):
        pair_files(folder)


def test_classify_predict_ids_are_the_file_names_so_they_never_collide(tmp_path, capsys):
    folder = images(tmp_path / "in", "0_1.png", "0_1.jpg", "0_1_sat.png", size=8)
    out = tmp_path / "pred.csv"
    assert (
        main(
            [
                "classify",
                "predict",
                "--ckpt",
                str(DATA / "old_classify.pt"),
                "--images",
                str(folder),
                "--out",
                str(out),
                "--device",
                "cpu",
                "--workers",
                "0",
            ]
        )
        == 0
    )
    with open(out, newline="") as f:
        ids = [row["image_id"] for row in csv.DictReader(f)]
    assert ids == ["0_1.jpg", "0_1.png", "0_1_sat.png"]


def test_a_snapshot_name_that_fits_two_tiles_is_refused():
    files = [Path("0013_sat.jpg"), Path("13_sat.jpg"), Path("0014_sat.jpg")]
    assert named_indices(files, ["13_sat.jpg", "0014", "0013_sat"]) == [1, 2, 0]
    with pytest.raises(ConfigError, match="'13' names both 0013_sat.jpg and 13_sat.jpg; give the full file name"):
        named_indices(files, ["13"])
