"""Mask codec: palette, thresholds, red pixels, lossy-mask detection, round trips on real masks."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from course_reference import load_course_reference
from fcnlab.data.mask_codec import (
    CLASS_NAMES,
    CODE_TO_CLASS,
    LOSSY_SHARE,
    NUM_CLASSES,
    PALETTE,
    SCORED_CLASSES,
    UNKNOWN,
    OffPaletteReport,
    class_to_rgb,
    count_off_palette,
    read_mask,
    rgb_to_class,
    write_mask,
)
from fcnlab.errors import DataError

REAL_MASKS = ("0000_mask.png", "0001_mask.png", "0042_mask.png", "0177_mask.png")


def test_constants_describe_the_course_palette():
    assert CLASS_NAMES == ("urban", "agriculture", "rangeland", "forest", "water", "barren", "unknown")
    assert PALETTE.shape == (NUM_CLASSES, 3) and PALETTE.dtype == np.uint8
    assert (NUM_CLASSES, UNKNOWN, SCORED_CLASSES) == (7, 6, 6)
    # Every palette colour decodes to its own id, and the two non-class codes (black, red) to unknown.
    ids, n_red = rgb_to_class(PALETTE[None, :, :])
    assert ids.tolist() == [list(range(NUM_CLASSES))] and n_red == 0
    assert CODE_TO_CLASS[0] == UNKNOWN and CODE_TO_CLASS[4] == UNKNOWN


def test_codec_matches_course_thresholds_on_arbitrary_values(tmp_path):
    """Thresholding at 128 of any value (not only 0/255) equals the course's read_masks."""
    rng = np.random.default_rng(1)
    rgb = rng.integers(0, 256, size=(512, 512, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(tmp_path / "x.png")
    expected = load_course_reference().read_masks(str(tmp_path))[0]
    from fcnlab.data.mask_codec import rgb_to_codes

    assert np.array_equal(CODE_TO_CLASS[rgb_to_codes(rgb)], expected.astype(np.uint8))


def test_red_pixels_become_unknown_and_are_counted():
    rgb = np.zeros((2, 3, 3), dtype=np.uint8)
    rgb[0, 0] = (255, 0, 0)
    rgb[1, 2] = (255, 0, 0)
    rgb[0, 1] = (0, 255, 255)
    ids, n_red = rgb_to_class(rgb)
    assert n_red == 2
    assert ids.tolist() == [[6, 0, 6], [6, 6, 6]]


def test_count_off_palette_counts_pixels_not_channels():
    rgb = np.zeros((4, 4, 3), dtype=np.uint8)
    rgb[0, 0] = (1, 2, 3)  # one pixel, three bad channels
    rgb[1, 1] = (255, 254, 0)
    rgb[2, 2] = (255, 255, 255)
    assert count_off_palette(rgb) == 2


def test_few_off_palette_pixels_are_tolerated_many_are_not():
    rgb = np.zeros((100, 100, 3), dtype=np.uint8)
    n_ok = int(LOSSY_SHARE * 100 * 100)  # exactly at the threshold: accepted
    rgb.reshape(-1, 3)[:n_ok] = (200, 10, 10)
    ids, n_red = rgb_to_class(rgb)
    assert n_red == n_ok and (ids == UNKNOWN).all()
    rgb.reshape(-1, 3)[: n_ok + 1] = (200, 10, 10)
    with pytest.raises(DataError, match=r"mymask\.png: masks must be lossless palette PNGs; 0\.1% of pixels "):
        rgb_to_class(rgb, source="mymask.png")


def test_class_to_rgb_checks_ids():
    ids = np.array([[0, 1, 2], [3, 4, 6]])
    assert class_to_rgb(ids).tolist() == [[PALETTE[i].tolist() for i in row] for row in ids]
    with pytest.raises(ValueError, match="class id 7"):
        class_to_rgb(np.array([[0, 7]]))
    with pytest.raises(ValueError, match="integers"):
        class_to_rgb(np.zeros((2, 2)))


def test_write_mask_round_trip_and_refuses_jpeg(tmp_path):
    ids = np.arange(42, dtype=np.uint8).reshape(6, 7) % NUM_CLASSES
    write_mask(tmp_path / "a_mask.png", ids)
    back, n_red = read_mask(tmp_path / "a_mask.png")
    assert np.array_equal(back, ids) and n_red == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a_mask.png"]  # no temporary file left
    with pytest.raises(DataError, match=r"a_mask\.jpg: .*\.png"):
        write_mask(tmp_path / "a_mask.jpg", ids)
    assert not (tmp_path / "a_mask.jpg").exists()


def test_palette_and_rgba_pngs_are_read(tmp_path):
    ids = np.array([[0, 1, 2, 3], [4, 5, 6, 0]], dtype=np.uint8)
    p_img = Image.fromarray(ids, mode="P")
    p_img.putpalette(PALETTE.reshape(-1).tolist())
    p_img.save(tmp_path / "p.png")
    Image.fromarray(class_to_rgb(ids)).convert("RGBA").save(tmp_path / "rgba.png")
    assert np.array_equal(read_mask(tmp_path / "p.png")[0], ids)
    assert np.array_equal(read_mask(tmp_path / "rgba.png")[0], ids)


def test_class_index_png_gets_its_own_message(tmp_path):
    Image.fromarray(np.arange(64, dtype=np.uint8).reshape(8, 8) % 7, mode="L").save(tmp_path / "idx.png")
    with pytest.raises(DataError, match=r"idx\.png: looks like a class-index image"):
        read_mask(tmp_path / "idx.png")


def test_unreadable_mask_is_one_data_error(tmp_path):
    (tmp_path / "bad_mask.png").write_bytes(b"not a png")
    with pytest.raises(DataError, match=r"bad_mask\.png: not an image file"):
        read_mask(tmp_path / "bad_mask.png")


def test_off_palette_report_summary():
    report = OffPaletteReport()
    assert report.summary() is None
    report.add("a.png", 0)
    assert report.summary() is None
    report.add("0177_mask.png", 7)
    assert report.summary() == "1 mask holds 7 off-palette (red) pixels, counted as unknown: 0177_mask.png (7)"
    for i in range(6):
        report.add(f"{i}.png", 1)
    line = report.summary()
    assert line.startswith("7 masks hold 13 off-palette (red) pixels, counted as unknown: 0177_mask.png (7), ")
    assert line.endswith("3.png (1), ...") and "\n" not in line


@pytest.mark.realdata
def test_round_trips_on_real_masks(dlcv_root):
    folder = dlcv_root / "p2_data" / "validation"
    for name in REAL_MASKS:
        rgb = np.asarray(Image.open(folder / name).convert("RGB"))
        ids, n_red = read_mask(folder / name)
        assert ids.shape == (512, 512) and ids.dtype == np.uint8
        assert np.array_equal(rgb_to_class(class_to_rgb(ids))[0], ids)  # ids -> rgb -> ids
        red = (rgb == (255, 0, 0)).all(axis=-1)
        assert int(red.sum()) == n_red
        again = class_to_rgb(ids)  # rgb -> ids -> rgb: identical except red, which becomes black
        assert np.array_equal(again[~red], rgb[~red])
        assert (again[red] == PALETTE[UNKNOWN]).all()


@pytest.mark.realdata
def test_red_pixels_of_validation_0177(dlcv_root):
    path = dlcv_root / "p2_data" / "validation" / "0177_mask.png"
    ids, n_red = read_mask(path)
    rgb = np.asarray(Image.open(path).convert("RGB"))
    red = (rgb == (255, 0, 0)).all(axis=-1)
    assert n_red == int(red.sum()) > 0
    assert (ids[red] == UNKNOWN).all()
    report = OffPaletteReport()
    report.add(path.name, n_red)
    assert f"0177_mask.png ({n_red})" in report.summary()


@pytest.mark.realdata
def test_jpeg_compressed_real_mask_is_refused(dlcv_root, tmp_path):
    rgb = np.asarray(Image.open(dlcv_root / "p2_data" / "validation" / "0000_mask.png").convert("RGB"))
    Image.fromarray(rgb).save(tmp_path / "0000_mask.jpg", quality=90)
    with pytest.raises(
        DataError,
        match=r"0000_mask\.jpg: masks must be lossless palette PNGs; [\d.]+% of "
        r"pixels are off-palette \(JPEG-compressed\?\)",
    ):
        read_mask(tmp_path / "0000_mask.jpg")
    # The same JPEG content renamed to .png is caught by its pixels.
    Image.open(tmp_path / "0000_mask.jpg").save(tmp_path / "0000_mask.png")
    with pytest.raises(DataError, match=r"0000_mask\.png: masks must be lossless") as info:
        read_mask(tmp_path / "0000_mask.png")
    share = float(str(info.value).split("; ")[1].split("%")[0])
    assert share > 100 * LOSSY_SHARE
