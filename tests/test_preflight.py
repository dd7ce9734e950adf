"""Training options are checked before the run folder is created: a mistake leaves no half-made run behind that
would block the corrected command."""

from __future__ import annotations

import sys

import pytest
import torch

from fcnlab.cli.main import main
from fcnlab.data.synthetic import make_segmentation_data
from train_once import segment_train_argv


@pytest.fixture(scope="module")
def tiles(tmp_path_factory):
    return make_segmentation_data(tmp_path_factory.mktemp("p2"), n_train=2, n_val=2, size=64)


def _train(tiles, out, *extra: str) -> int:
    return main(segment_train_argv(tiles, out, "--cache", "off", *extra, model="fcn8s_resnet34", epochs=1))


@pytest.mark.parametrize(
    "extra, says",
    [
        (("--snapshot-images", "0999_sat.jpg"), "'0999_sat.jpg' is not among the 2 validation tiles"),
        (("--val", "/nonexistent/validation"), "/nonexistent/validation: folder does not exist"),
        (("--weights", "/nonexistent/vgg.pth"), "option --weights /nonexistent/vgg.pth: file does not exist"),
    ],
)
def test_a_bad_option_stops_before_the_run_folder_exists(tiles, tmp_path, capsys, extra, says):
    out = tmp_path / "run"
    assert _train(tiles, out, *extra) == 2
    assert says in capsys.readouterr().err
    assert not out.exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without a GPU")
def test_a_missing_device_stops_before_the_run_folder_exists(tiles, tmp_path, capsys):
    assert _train(tiles, tmp_path / "run", "--device", "cuda") == 2
    assert "no GPU is visible" in capsys.readouterr().err and not (tmp_path / "run").exists()


def test_tensorboard_missing_stops_before_the_run_folder_exists(tiles, tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)  # import fails as if not installed
    assert _train(tiles, tmp_path / "run", "--tensorboard") == 2
    assert "tensorboard package is not installed" in capsys.readouterr().err and not (tmp_path / "run").exists()


def test_snapshot_epochs_after_the_last_are_named_in_a_warning(tiles, tmp_path, capsys):
    out = tmp_path / "run"
    assert _train(tiles, out, "--snapshot-epochs", "1,5,9") == 0
    err = capsys.readouterr().err
    assert "epoch(s) 5, 9 come after the last epoch (1); no masks are saved for them" in err
    assert (out / "snapshots" / "epoch_001.png").is_file()


@pytest.mark.parametrize(
    "argv, says",
    [
        (["segment", "train", "--epoch", "5"], "--epoch: did you mean --epochs?"),  # an abbreviation is refused
        (["segment", "train", "--snapshot-epoch=5"], "--snapshot-epoch=5: did you mean --snapshot-epochs?"),
        (["segment", "trian"], "invalid choice: 'trian'"),
        (["reproduce", "--data", "d", "--out", "o", "--profil", "gpu"], "did you mean --profile?"),
    ],
)
def test_command_line_typos_get_the_option_meant(argv, says, capsys):
    with pytest.raises(SystemExit) as e:
        main(argv)
    err = capsys.readouterr().err
    assert e.value.code == 2 and says in err and "did you mean" in err
