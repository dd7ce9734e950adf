"""Figures: each writes a PNG of the expected size; masks use the course palette; bad input is refused."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from fcnlab.data.synthetic import land_cover_tile
from fcnlab.errors import DataError
from fcnlab.report import viz

HEADER = "epoch,train_loss,train_acc,val_loss,val_acc,val_miou,lr,epoch_time_s\n"


def _png_size(path: Path) -> tuple[int, int]:
    assert path.stat().st_size > 1000
    with Image.open(path) as img:
        assert img.format == "PNG"
        return img.size


def _only(folder: Path) -> list[str]:
    """Names in ``folder``: no temporary files may be left behind by the atomic writes."""
    return sorted(p.name for p in folder.iterdir())


@pytest.fixture(scope="module")
def tiles() -> tuple[list[np.ndarray], list[np.ndarray]]:
    drawn = [land_cover_tile(32, np.random.default_rng(i)) for i in range(2)]
    return [img for img, _ in drawn], [ids for _, ids in drawn]


def test_confusion_matrix_7_classes_has_numbers(tmp_path: Path) -> None:
    mat = np.diag([5, 6, 7, 8, 9, 10, 0]) + 1
    names = ["urban", "agriculture", "rangeland", "forest", "water", "barren", "unknown"]
    fig = viz.confusion_matrix_figure(mat, names)
    texts = [t.get_text() for t in fig.axes[0].texts]
    assert len(texts) == 49
    assert texts[0] == f"{6 / 12:.2f}"  # row 0 normalised: 6 of 12
    viz.plot_confusion_matrix(mat, names, tmp_path / "cm.png", dpi=40)
    width, height = _png_size(tmp_path / "cm.png")
    assert (width, height) == (int(5.7 * 40), int(4.5 * 40))
    assert _only(tmp_path) == ["cm.png"]


def test_confusion_matrix_50_classes_no_numbers(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    mat = rng.integers(0, 5, size=(50, 50)) + 40 * np.eye(50, dtype=int)
    mat[3] = 0  # a class without samples must not produce NaNs
    fig = viz.confusion_matrix_figure(mat, [str(i) for i in range(50)])
    assert len(fig.axes[0].texts) == 0
    shown = fig.axes[0].images[0].get_array()
    assert np.isfinite(shown).all() and shown[3].sum() == 0
    assert np.allclose(np.asarray(shown)[np.arange(50) != 3].sum(axis=1), 1.0)
    viz.plot_confusion_matrix(mat, [str(i) for i in range(50)], tmp_path / "cm50.png", dpi=30)
    width, height = _png_size(tmp_path / "cm50.png")
    assert height >= 14 * 30 and width > height


def test_confusion_matrix_rejects_bad_shapes(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="square"):
        viz.plot_confusion_matrix(np.zeros((3, 4)), ["a", "b", "c"], tmp_path / "x.png")
    with pytest.raises(ValueError, match="class names"):
        viz.plot_confusion_matrix(np.zeros((3, 3)), ["a", "b"], tmp_path / "x.png")
    assert _only(tmp_path) == []


def test_training_curves_segmentation_and_classification(tmp_path: Path) -> None:
    seg = tmp_path / "seg.csv"
    seg.write_text(
        HEADER + "1,1.5,0.5,1.6,,0.30,0.01,2.0\n2,1.0,0.6,1.2,,0.40,0.005,2.1\n"
        "2,0.9,0.65,1.1,,0.45,0.005,2.1\n3,0.8,0.7,1.0,,0.50,0.001,2.0\n"
    )
    metrics = viz.read_metrics_csv(seg)
    assert metrics["epoch"].tolist() == [1.0, 2.0, 3.0]
    assert metrics["val_miou"].tolist() == [0.30, 0.45, 0.50]  # the repeated epoch keeps its last row
    assert np.isnan(metrics["val_acc"]).all()
    fig = viz.training_curves_figure(metrics)
    assert [line.get_label() for line in fig.axes[1].lines] == ["train accuracy", "val mIoU"]
    assert len(fig.axes) == 3  # loss, accuracy/mIoU, learning rate

    cls = tmp_path / "cls.csv"
    cls.write_text(HEADER + "1,3.9,0.1,3.8,0.12,,,5\n2,3.0,0.3,3.1,0.28,,,5\n")
    fig = viz.training_curves_figure(viz.read_metrics_csv(cls))
    assert [line.get_label() for line in fig.axes[1].lines] == ["train accuracy", "val accuracy"]
    assert len(fig.axes) == 2  # no learning rate recorded

    viz.plot_training_curves(seg, tmp_path / "seg.png", dpi=40)
    assert _png_size(tmp_path / "seg.png") == (15 * 40, int(4.2 * 40))
    viz.plot_training_curves(cls, tmp_path / "cls.png", dpi=40)
    assert _png_size(tmp_path / "cls.png") == (11 * 40, int(4.2 * 40))


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "does not exist"),
        ("", "not a metrics file"),
        ("a,b\n1,2\n", "not a metrics file"),
        (HEADER, "no epochs"),
        (HEADER + "1,abc,,,,,,\n", "line 2, column 'train_loss'"),
    ],
)
def test_training_curves_bad_metrics(tmp_path: Path, content: str | None, message: str) -> None:
    csv_path = tmp_path / "metrics.csv"
    if content is not None:
        csv_path.write_text(content)
    with pytest.raises(DataError, match=message) as info:
        viz.plot_training_curves(csv_path, tmp_path / "out.png")
    assert str(csv_path) in str(info.value)
    assert not (tmp_path / "out.png").exists()


def test_colorize_and_overlay() -> None:
    ids = np.array([[0, 1, 2, 3], [4, 5, 6, 6]], dtype=np.uint8)
    colours = viz.colorize(ids)
    assert colours[0, 0].tolist() == [0, 255, 255]
    assert colours[0, 1].tolist() == [255, 255, 0]
    assert colours[1, 0].tolist() == [0, 0, 255]
    assert colours[1, 3].tolist() == [0, 0, 0]
    image = np.full((2, 4, 3), 100, dtype=np.uint8)
    assert np.array_equal(viz.overlay(image, ids, alpha=0.0), image)
    assert np.array_equal(viz.overlay(image, ids, alpha=1.0), colours)
    half = viz.overlay(image, ids, alpha=0.5)
    assert half.dtype == np.uint8 and half.shape == (2, 4, 3)
    assert half[0, 0].tolist() == [50, 178, 178]  # (100 + 0) / 2, (100 + 255) / 2 rounded
    with pytest.raises(ValueError, match="class id 7"):
        viz.colorize(np.array([[0, 7]]))
    with pytest.raises(ValueError, match="does not match"):
        viz.overlay(np.zeros((3, 4, 3), np.uint8), ids)
    with pytest.raises(ValueError, match="alpha"):
        viz.overlay(image, ids, alpha=1.5)


def test_mask_snapshot(tmp_path: Path, tiles: tuple[list[np.ndarray], list[np.ndarray]]) -> None:
    images, gts = tiles
    preds = [np.roll(g, 3, axis=1) for g in gts]
    viz.plot_mask_snapshot(images, gts, preds, tmp_path / "snap.png", "epoch 5", dpi=30)
    width, height = _png_size(tmp_path / "snap.png")
    assert width == int(3 * 2.6 * 30) and height == int((2 * 2.6 + 1.0) * 30)
    # the prediction panel shows exactly the palette colours of the prediction
    fig = viz.mask_grid_figure((("satellite", images), ("ground truth", gts), ("prediction", preds)), "t")
    assert np.array_equal(fig.axes[2].images[0].get_array(), viz.colorize(preds[0]))
    legend = [t.get_text() for t in fig.legends[0].get_texts()]
    assert legend == ["0 urban", "1 agriculture", "2 rangeland", "3 forest", "4 water", "5 barren", "6 unknown"]
    with pytest.raises(ValueError, match="2 images but 1 predictions"):
        viz.plot_mask_snapshot(images, gts, preds[:1], tmp_path / "bad.png", "x")
    with pytest.raises(ValueError, match="shape"):
        viz.plot_mask_snapshot(images, gts, [p[:16] for p in preds], tmp_path / "bad.png", "x")
    assert _only(tmp_path) == ["snap.png"]


def test_snapshot_grid(tmp_path: Path, tiles: tuple[list[np.ndarray], list[np.ndarray]]) -> None:
    images, gts = tiles
    snapshots = {50: gts, 5: [np.ones_like(g) for g in gts], 25: [np.roll(g, 2, axis=0) for g in gts]}
    viz.plot_snapshot_grid(snapshots, images, gts, tmp_path / "grid.png", dpi=30)
    width, height = _png_size(tmp_path / "grid.png")
    assert width == int(5 * 2.6 * 30) and height == int((2 * 2.6 + 1.0) * 30)
    with pytest.raises(ValueError, match="epoch 25"):
        viz.plot_snapshot_grid({5: gts, 25: gts[:1]}, images, gts, tmp_path / "bad.png")
    with pytest.raises(ValueError, match="no snapshot"):
        viz.plot_snapshot_grid({}, images, gts, tmp_path / "bad.png")


def test_snapshot_grid_labels_rows_with_names_and_columns_with_miou(tmp_path: Path, tiles, monkeypatch) -> None:
    images, gts = tiles
    seen = {}
    real = viz.mask_grid_figure

    def spy(columns, title, row_labels=None):
        seen["headings"], seen["rows"] = [c[0] for c in columns], row_labels
        return real(columns, title, row_labels)

    monkeypatch.setattr(viz, "mask_grid_figure", spy)
    viz.plot_snapshot_grid(
        {25: gts, 5: gts},
        images,
        gts,
        tmp_path / "grid.png",
        dpi=30,
        row_labels=["0013_sat.jpg", "0100_sat.jpg"],
        mious={5: 0.41234, 25: float("nan")},
    )
    assert seen["headings"] == ["satellite", "ground truth", "epoch 5\nmIoU 0.4123", "epoch 25"]
    assert seen["rows"] == ["0013_sat.jpg", "0100_sat.jpg"]
    fig = real([("satellite", images)], "t", row_labels=["a.jpg", "b.jpg"])
    assert [ax.get_ylabel() for ax in fig.axes[:2]] == ["a.jpg", "b.jpg"]


def test_named_snapshot_tiles(tmp_path: Path) -> None:
    from fcnlab.data.subset import named_indices
    from fcnlab.errors import ConfigError

    files = [Path(f"/v/{i:04d}_sat.jpg") for i in range(20)]
    assert named_indices(files, ["0013_sat.jpg", "0002_sat", "0005", 7, "0013"]) == [13, 2, 5, 7]
    with pytest.raises(
        ConfigError,
        match=r"'0099_sat.jpg' is not among the 20 validation tiles of v/ "
        r"\(0000_sat.jpg, 0001_sat.jpg, 0002_sat.jpg, ...\)",
    ):
        named_indices(files, ["0099_sat.jpg"], "v/")


@pytest.mark.parametrize(
    ("train_loss", "label", "scale"),
    [
        ([2.3, 1.9, 1.5, 1.2], "loss", "linear"),
        ([480.0, 1.9, 1.5, 1.2], "loss (log scale)", "log"),  # one huge early value: log axis
        ([480.0, 1.9, 0.0, 1.2], "loss (clipped at 2.2)", "linear"),  # a zero: no log axis, clipped instead
    ],
)
def test_loss_axis_stays_readable(train_loss, label, scale) -> None:
    epochs = np.arange(1.0, 5.0)
    metrics = {"epoch": epochs, "train_loss": np.asarray(train_loss), "val_loss": np.asarray([2.0, 1.8, 1.6, 1.5])}
    ax = viz.training_curves_figure(metrics).axes[0]
    assert ax.get_ylabel() == label and ax.get_yscale() == scale
    if "clipped" in label:
        assert ax.get_ylim() == pytest.approx((0.0, 2.2))  # just above the largest value but the outlier
