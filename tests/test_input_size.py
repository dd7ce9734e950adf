"""Training at a reduced input scale (``--input-size``): majority-vote masks, area-reduced images, a model that
takes full-size inputs and gives full-size logits, the scale kept in the checkpoint, scored at full resolution."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from fcnlab.checkpoint import load_checkpoint
from fcnlab.cli.main import main
from fcnlab.data.mask_codec import read_mask
from fcnlab.data.reduce import majority_vote, reduce_image, reduction_factor
from fcnlab.data.segmentation import load_tile_set, pair_files
from fcnlab.data.synthetic import make_segmentation_data
from fcnlab.errors import DataError
from fcnlab.infer.predictor import load_predictor
from fcnlab.infer.tiling import predict_mask
from fcnlab.infer.tta import SegmentationTTA, apply_transform, invert_transform, transforms_for
from fcnlab.models import build_model
from fcnlab.models.scaled import ScaledInput, checkpoint_reduction, with_input_reduction
from fcnlab.tasks.metrics import course_miou
from train_once import segment_train_argv, train_once

CPU = ("--device", "cpu", "--workers", "0")


def test_majority_vote_takes_each_blocks_most_frequent_class():
    mask = np.array([[0, 0, 1, 1], [0, 2, 1, 5], [3, 3, 6, 6], [4, 4, 5, 2]], dtype=np.uint8)
    # blocks: {0,0,0,2} -> 0; {1,1,1,5} -> 1; {3,3,4,4} tie -> 3 (lower id); {6,6,5,2} -> 6
    assert majority_vote(mask, 2).tolist() == [[0, 1], [3, 6]]
    # a thin region that nearest sampling (mask[::2, ::2]) would keep, and loses everything else
    stripe = np.zeros((4, 4), dtype=np.uint8)
    stripe[0] = 4
    assert stripe[::2, ::2].any() and not majority_vote(stripe, 2).any()
    assert majority_vote(mask, 1) is mask


def test_images_are_reduced_by_block_means():
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (8, 12, 3), dtype=np.uint8)
    small = reduce_image(img, 4)
    means = img.reshape(2, 4, 3, 4, 3).astype(np.float64).mean(axis=(1, 3))
    assert small.shape == (2, 3, 3) and small.dtype == np.uint8
    assert np.abs(small - means).max() <= 0.5 + 1e-9  # the mean, rounded


def test_reduction_factor_must_divide_the_tile(tmp_path):
    assert reduction_factor(512, 512, 0, "t") == 1
    assert reduction_factor(512, 512, 512, "t") == 1
    assert reduction_factor(512, 512, 128, "t") == 4
    with pytest.raises(DataError, match=r"x\.jpg: tiles are 512x512; --input-size 100 .*256, 128, 64"):
        reduction_factor(512, 512, 100, "x.jpg")
    with pytest.raises(DataError, match="--input-size 1024"):
        reduction_factor(512, 512, 1024, "x.jpg")


def test_tile_set_at_input_size_votes_masks_and_caches_apart(tmp_path, monkeypatch):
    monkeypatch.setenv("FCNLAB_CACHE", str(tmp_path / "cache"))
    data = make_segmentation_data(tmp_path / "d", n_train=2, n_val=1, size=64)
    full = load_tile_set(data / "train", cache="disk")
    small = load_tile_set(data / "train", cache="disk", input_size=16)
    assert full.reduction == 1 and small.reduction == 4
    assert small.images.shape == (2, 3, 16, 16) and small.masks.shape == (2, 16, 16)
    tile, mask = pair_files(data / "train")[0]
    assert np.array_equal(small.masks[0], majority_vote(read_mask(mask)[0], 4))
    assert np.array_equal(
        small.images[0], reduce_image(np.asarray(full.images[0]).transpose(1, 2, 0), 4).transpose(2, 0, 1)
    )
    assert sorted(p.name.split("-")[0] for p in (tmp_path / "cache").iterdir()) == ["p2", "p2"]


@pytest.mark.parametrize("size", [(64, 64), (60, 44), (3, 5)])
def test_scaled_model_gives_logits_of_the_input_size(size):
    torch.manual_seed(0)
    model = build_model("fcn8s_lite", 7).eval()
    for m in model.modules():  # non-zero score layers: an all-zero output would hide a mistake
        if isinstance(m, torch.nn.Conv2d) and not m.weight.any():
            torch.nn.init.normal_(m.weight, std=0.1)
    scaled = ScaledInput(model, 4)
    x = torch.randn(2, 3, *size)
    with torch.no_grad():
        y = scaled(x)
        assert y.shape == (2, 7, *size)
        if size[0] % 4 == 0 and size[1] % 4 == 0:
            want = F.interpolate(model(F.avg_pool2d(x, 4)), size=size, mode="bilinear", align_corners=False)
            torch.testing.assert_close(y, want)
    assert with_input_reduction(scaled, 4) is scaled and with_input_reduction(model, 1) is model


def test_d4_tta_composes_with_the_scale():
    torch.manual_seed(0)
    model = build_model("fpn_lite", 7).eval()
    torch.nn.init.normal_(model.score.weight, std=0.1)
    tta = SegmentationTTA(ScaledInput(model, 2), "d4")
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        base = tta(x)
        for t in transforms_for("d4"):  # the D4 average is invariant: a transformed input, the same map moved
            torch.testing.assert_close(invert_transform(tta(apply_transform(x, t)), t), base, atol=1e-4, rtol=1e-4)
    assert base.shape == (1, 7, 64, 64)


@pytest.fixture(scope="module")
def scaled_run(tmp_path_factory: pytest.TempPathFactory) -> dict:
    root = tmp_path_factory.mktemp("scaled")
    data = make_segmentation_data(root / "data", n_train=4, n_val=2, size=64)
    run = root / "run"
    argv = segment_train_argv(
        data, run, "--input-size", "32", "--snapshot-epochs", "2", model="fcn8s_lite", image_size=32
    )
    rc = train_once(argv, root / "cache")
    assert rc == 0
    return {"root": root, "data": data, "run": run}


def test_snapshots_show_full_resolution_masks(scaled_run):
    with np.load(scaled_run["run"] / "snapshots" / "epoch_002.npz") as z:
        assert z["preds"].shape[1:] == (64, 64)  # the tiles' size, not the model's 32x32


def test_checkpoint_records_and_restores_the_scale(scaled_run):
    ckpt = load_checkpoint(scaled_run["run"] / "best.pt")
    assert ckpt["input_reduction"] == 2 and checkpoint_reduction(ckpt) == 2
    assert ckpt["config"]["input_size"] == 32
    pred = load_predictor(scaled_run["run"], "cpu", task="segment")
    assert isinstance(pred.model, ScaledInput) and pred.model.reduction == 2
    assert checkpoint_reduction({}) == 1  # checkpoints written before the option: full size


@pytest.mark.slow
def test_predictions_have_the_input_size_with_tta_and_tiling(scaled_run):
    pred = load_predictor(scaled_run["run"], "cpu", task="segment", tta="d4")
    big = np.random.default_rng(0).integers(0, 256, (200, 176, 3), dtype=np.uint8)
    whole = predict_mask(pred, big, tile=1024)
    tiled = predict_mask(pred, big, tile=160, margin=64)
    assert whole.shape == tiled.shape == (200, 176)
    assert (whole == tiled).mean() > 0.9  # tiles see less context at their borders, the same model inside


def test_eval_scores_full_resolution_masks(scaled_run, capsys):
    run, val = scaled_run["run"], scaled_run["data"] / "validation"
    assert main(["segment", "eval", "--ckpt", str(run), "--data", str(val), *CPU]) == 0
    out = capsys.readouterr().out
    printed = [float(line.split(" : ")[1]) for line in out.splitlines() if line.startswith("class #")]
    assert len(printed) == 6 and np.isfinite(printed).sum() >= 2
    pred = load_predictor(run, "cpu", task="segment")
    conf = np.zeros((7, 7), dtype=np.int64)
    for tile, mask in pair_files(val):
        from fcnlab.data.images import read_rgb

        gt = read_mask(mask)[0]
        out = predict_mask(pred, read_rgb(tile))
        assert out.shape == gt.shape == (64, 64)  # full resolution, not the model's 32x32
        conf += np.bincount(gt.astype(np.int64).ravel() * 7 + out.ravel(), minlength=49).reshape(7, 7)
    assert printed == pytest.approx(list(course_miou(conf).per_class), abs=6e-6, nan_ok=True)  # 5 decimals


@pytest.mark.slow
def test_onnx_export_takes_full_size_inputs(scaled_run, tmp_path, capsys):
    pytest.importorskip("onnxruntime")
    from fcnlab.infer import export

    out = tmp_path / "scaled.onnx"
    assert main(["export", "--ckpt", str(scaled_run["run"]), "--format", "onnx", "--out", str(out)]) == 0
    assert "check: max abs diff" in capsys.readouterr().out
    pred = load_predictor(scaled_run["run"], "cpu", task="segment", fold=False)
    x = torch.randn(1, 3, 64, 64)
    got = export.run_onnx(out, x)
    with torch.no_grad():
        want = ScaledInput(pred.model.model, 2)(x)
    assert got.shape == (1, 7, 64, 64)  # the input's size: the reduction is inside the exported graph
    assert (got - want).abs().max() <= 1e-3


@pytest.mark.realdata
def test_majority_vote_keeps_real_masks_almost_whole(dlcv_root):
    """The course masks reduced 4x by majority vote and enlarged back still score near 1 against themselves
    (0.983 over all 257 validation masks, shared/NOTES.md); nearest sampling keeps less."""
    conf_vote = np.zeros((7, 7), dtype=np.int64)
    conf_nearest = np.zeros((7, 7), dtype=np.int64)
    for stem in ("0003", "0008", "0011", "0013"):
        gt = read_mask(dlcv_root / "p2_data" / "validation" / f"{stem}_mask.png")[0].astype(np.int64)
        for conf, small in ((conf_vote, majority_vote(gt, 4)), (conf_nearest, gt[::4, ::4])):
            back = small.repeat(4, 0).repeat(4, 1)
            conf += np.bincount(gt.ravel() * 7 + back.ravel(), minlength=49).reshape(7, 7)
    vote, nearest = course_miou(conf_vote).mean_present, course_miou(conf_nearest).mean_present
    assert vote > 0.95 and vote > nearest


def test_resume_refuses_another_input_size(scaled_run, capsys):
    run = scaled_run["run"]
    before = (run / "config.yaml").read_bytes()
    rc = main(["segment", "train", "--resume", str(run), "--input-size", "64", "--epochs", "3", "--device", "cpu"])
    assert rc == 2
    assert "--input-size 64 (the run has 32)" in capsys.readouterr().err
    assert (run / "config.yaml").read_bytes() == before
