"""The Python API: lazy import, build_model defaults, load_checkpoint, predict_masks / predict_labels on
arrays, paths and folders, evaluate_masks, train, and errors for bad input."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import fcnlab
from fcnlab.checkpoint import save_checkpoint
from fcnlab.config import from_dict
from fcnlab.data.mask_codec import class_to_rgb
from fcnlab.errors import ConfigError, DataError


def _checkpoint(path: Path, task: str, model: str, num_classes: int, **config) -> Path:
    """An untrained model saved the way training saves it (enough for inference)."""
    torch.manual_seed(0)
    net = fcnlab.build_model(model, num_classes)
    cfg = from_dict({"task": task, "model": model, "num_classes": num_classes, "device": "cpu", **config})
    save_checkpoint(
        path,
        task=task,
        model_name=model,
        num_classes=num_classes,
        model=net.state_dict(),
        config=cfg.to_dict(),
        epoch=1,
        metrics={"val_miou": 0.5},
    )
    return path


@pytest.fixture(scope="module")
def seg_ckpt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _checkpoint(tmp_path_factory.mktemp("seg") / "best.pt", "segment", "fcn32s_resnet34", 7)


@pytest.fixture(scope="module")
def cls_ckpt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _checkpoint(tmp_path_factory.mktemp("cls") / "best.pt", "classify", "resnet18", 5)


def _tiles(n: int, size: int = 32) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    return [rng.integers(0, 256, size=(size, size + 8 * i, 3), dtype=np.uint8) for i in range(n)]


def test_import_is_lazy_and_api_names_are_functions() -> None:
    code = (
        "import sys, fcnlab; assert 'torch' not in sys.modules and 'numpy' not in sys.modules, 'heavy import'; "
        "import fcnlab.evaluate.mask_folders, fcnlab.cli.miou; "
        "from fcnlab.evaluate.mask_folders import pair_masks; "
        "assert callable(fcnlab.evaluate_masks) and fcnlab.evaluate_masks.__module__ == 'fcnlab.api'; "
        "assert set(fcnlab.API) <= set(dir(fcnlab)); print('ok')"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        fcnlab.nope  # noqa: B018


def test_build_model_default_classes() -> None:
    assert fcnlab.build_model("resnet18").fc.out_features == 50
    seg = fcnlab.build_model("fcn32s_resnet34").eval()
    with torch.no_grad():
        assert seg(torch.zeros(1, 3, 64, 64)).shape == (1, 7, 64, 64)
    assert fcnlab.build_model("resnet18", 10).fc.out_features == 10
    with pytest.raises(ConfigError, match="unknown model 'vgg99'"):
        fcnlab.build_model("vgg99")


def test_load_checkpoint_gives_model_and_checkpoint(seg_ckpt: Path) -> None:
    pred = fcnlab.load_checkpoint(seg_ckpt.parent, device="cpu")  # a run folder: its best.pt
    assert pred.path == seg_ckpt and not pred.model.training
    assert pred.ckpt["metrics"] == {"val_miou": 0.5} and pred.cfg.model == "fcn32s_resnet34"


def test_predict_masks_arrays_paths_and_folder_agree(seg_ckpt: Path, tmp_path: Path) -> None:
    tiles = _tiles(3)
    masks = fcnlab.predict_masks(seg_ckpt, tiles, device="cpu")
    assert [m.shape for m in masks] == [t.shape[:2] for t in tiles]
    assert all(m.dtype == np.uint8 and m.max() <= 6 for m in masks)
    pred = fcnlab.load_checkpoint(seg_ckpt, device="cpu")
    with torch.no_grad():
        x = torch.from_numpy(tiles[0].transpose(2, 0, 1).copy())[None]
        expected = pred.logits(x).argmax(1)[0].numpy()
    assert np.array_equal(masks[0], expected)
    for i, tile in enumerate(tiles):  # a folder of tiles with masks beside them: masks are skipped
        Image.fromarray(tile).save(tmp_path / f"{i:04d}_sat.png")
        Image.fromarray(class_to_rgb(np.zeros(tile.shape[:2], np.uint8))).save(tmp_path / f"{i:04d}_mask.png")
    from_folder = fcnlab.predict_masks(pred, tmp_path)
    from_paths = fcnlab.predict_masks(pred, [tmp_path / "0001_sat.png"])
    assert len(from_folder) == 3 and all(np.array_equal(a, b) for a, b in zip(from_folder, masks, strict=True))
    assert np.array_equal(from_paths[0], masks[1])
    assert np.array_equal(fcnlab.predict_masks(pred, tiles[2])[0], masks[2])  # one array


def test_predict_bad_input(seg_ckpt: Path, cls_ckpt: Path, tmp_path: Path) -> None:
    seg = fcnlab.load_checkpoint(seg_ckpt, device="cpu")
    with pytest.raises(DataError, match=r"images\[1\]: expected an \(H, W, 3\) uint8 RGB array"):
        fcnlab.predict_masks(seg, [_tiles(1)[0], np.zeros((8, 8, 3), np.float32)])
    with pytest.raises(ConfigError, match="checkpoint is a classify model, not segment"):
        fcnlab.predict_masks(cls_ckpt, _tiles(1), device="cpu")
    with pytest.raises(ConfigError, match="is a segment model, not classify"):
        fcnlab.predict_labels(seg, _tiles(1))
    (tmp_path / "bad.png").write_bytes(b"not an image")
    with pytest.raises(DataError, match="bad.png"):
        fcnlab.predict_masks(seg, [tmp_path / "bad.png"])


def test_predict_labels_batches_like_one_by_one(cls_ckpt: Path) -> None:
    rng = np.random.default_rng(1)
    images = [rng.integers(0, 256, size=(32, 32, 3), dtype=np.uint8) for _ in range(5)]
    images.insert(2, rng.integers(0, 256, size=(40, 40, 3), dtype=np.uint8))  # another size: its own batch
    pred = fcnlab.load_checkpoint(cls_ckpt, device="cpu")
    labels = fcnlab.predict_labels(pred, images, batch_size=2)
    single = [int(fcnlab.predict_labels(pred, [im])[0]) for im in images]
    assert labels.dtype == np.int64 and labels.tolist() == single
    assert all(0 <= v < 5 for v in single)
    with pytest.raises(ConfigError, match="batch_size must be >= 1"):
        fcnlab.predict_labels(cls_ckpt, images, batch_size=0)


def test_evaluate_masks_is_the_miou_evaluator(tmp_path: Path) -> None:
    (tmp_path / "gt").mkdir()
    (tmp_path / "pred").mkdir()
    ids = np.repeat(np.arange(7, dtype=np.uint8), 4).reshape(4, 7)
    Image.fromarray(class_to_rgb(ids)).save(tmp_path / "gt" / "0000_mask.png")
    wrong = ids.copy()
    wrong[0, 0] = 1  # one urban pixel predicted as agriculture
    Image.fromarray(class_to_rgb(wrong)).save(tmp_path / "pred" / "0000_mask.png")
    result = fcnlab.evaluate_masks(tmp_path / "gt", tmp_path / "pred")
    assert result.per_class[0] == pytest.approx(3 / 4) and result.per_class[1] == pytest.approx(4 / 5)
    assert result.per_class[2:] == [1.0, 1.0, 1.0, 1.0]


def test_train_from_dict_and_errors(tmp_path: Path) -> None:
    from fcnlab.data.synthetic import make_classification_data

    data = make_classification_data(tmp_path / "p1", num_classes=3, train_per_class=4, val_per_class=2)
    summary = fcnlab.train(
        {"task": "classify", "model": "resnet18", "num_classes": 3, "batch_size": 6, "cache": "memory"},
        tmp_path / "run",
        data=str(data / "train_50"),
        val=str(data / "val_50"),
        epochs=1,
        device="cpu",
    )
    assert summary["epochs"] == 1 and summary["best_epoch"] == 1 and 0 <= summary["val_acc"] <= 1
    assert (tmp_path / "run" / "metrics.csv").read_text().startswith("epoch,")
    assert fcnlab.predict_labels(tmp_path / "run", data / "val_50", device="cpu").shape == (6,)
    with pytest.raises(ConfigError, match="unknown key"):
        fcnlab.train({"task": "classify", "learning_rate": 1}, tmp_path / "other")
    with pytest.raises(ConfigError, match="config must be a dict"):
        fcnlab.train(42, tmp_path / "other")
    with pytest.raises(ConfigError, match="pass config=None"):
        fcnlab.train({"task": "classify"}, tmp_path / "run", resume=True)


def test_train_refuses_an_input_folder_as_out_as_the_cli_does(tmp_path: Path) -> None:
    from fcnlab.cli.main import main

    data = tmp_path / "images"
    data.mkdir()
    (data / "0_0.png").write_bytes(b"never overwritten")
    with pytest.raises(ConfigError, match="is the --data folder"):
        fcnlab.train({"task": "classify", "data": str(data)}, data)
    assert main(["classify", "train", "--data", str(data), "--out", str(data)]) == 2
    assert sorted(p.name for p in data.iterdir()) == ["0_0.png"]


@pytest.mark.slow
def test_compare_and_report_functions(tmp_path: Path) -> None:
    from report_runs import make_run

    a, b = make_run(tmp_path, "a"), make_run(tmp_path, "b")
    assert fcnlab.compare_runs([a, b]).runs == ["a", "b"]
    assert fcnlab.write_report([a, b], tmp_path / "r.html").images == 10  # 4 per run, IoU bars, mIoU curves


@pytest.mark.realdata
def test_predict_masks_on_real_tiles(dlcv_root: Path, seg_ckpt: Path) -> None:
    tile = dlcv_root / "p2_data" / "validation" / "0177_sat.jpg"
    masks = fcnlab.predict_masks(seg_ckpt, [tile], device="cpu")
    assert [m.shape for m in masks] == [(512, 512)]
    assert all(m.dtype == np.uint8 and m.max() <= 6 for m in masks)
