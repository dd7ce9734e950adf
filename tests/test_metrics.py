"""Confusion matrix and the course's mIoU, checked against independent formulas and the course script."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from course_reference import confusion_counts, load_course_reference
from fcnlab.tasks.metrics import (
    ConfusionMatrix,
    MiouResult,
    accuracy,
    course_miou,
    format_course_lines,
    iou_per_class,
    per_class_accuracy,
)


def numpy_confusion(target: np.ndarray, pred: np.ndarray, n: int) -> np.ndarray:
    """Independent reference: one np.add.at per pixel pair."""
    mat = np.zeros((n, n), dtype=np.int64)
    np.add.at(mat, (target.reshape(-1), pred.reshape(-1)), 1)
    return mat


def random_maps(seed: int, shape=(3, 17, 19), n=7):
    rng = np.random.default_rng(seed)
    target = rng.integers(0, n, size=shape)
    pred = np.where(rng.random(shape) < 0.6, target, rng.integers(0, n, size=shape))
    return target, pred


def test_confusion_matrix_matches_numpy_reference():
    cm = ConfusionMatrix(7)
    expected = np.zeros((7, 7), dtype=np.int64)
    for seed, dtype in ((0, torch.uint8), (1, torch.int64), (2, torch.int32)):
        target, pred = random_maps(seed, shape=(2, 5 + seed, 9))
        cm.update(torch.from_numpy(target).to(dtype), torch.from_numpy(pred).to(dtype))
        expected += numpy_confusion(target, pred, 7)
    assert cm.mat.dtype == torch.int64 and tuple(cm.mat.shape) == (7, 7)
    assert np.array_equal(cm.numpy(), expected)
    assert np.array_equal(
        confusion_counts(*random_maps(0, shape=(2, 5, 9)), 7), numpy_confusion(*random_maps(0, shape=(2, 5, 9)), 7)
    )
    cm.all_reduce()  # not distributed: a no-op
    assert np.array_equal(cm.numpy(), expected)
    cm.reset()
    assert int(cm.mat.sum()) == 0


def test_rows_are_truth_and_columns_are_predictions():
    cm = ConfusionMatrix(3)
    cm.update(torch.tensor([0, 0, 2]), torch.tensor([1, 1, 2]))
    assert cm.numpy().tolist() == [[0, 2, 0], [0, 0, 0], [0, 0, 1]]


def test_ignore_index_and_bad_values():
    cm = ConfusionMatrix(3, ignore_index=255)
    cm.update(torch.tensor([0, 255, 2]), torch.tensor([0, 1, 1]))
    assert cm.numpy().tolist() == [[1, 0, 0], [0, 0, 0], [0, 1, 0]]
    with pytest.raises(ValueError, match=r"label value 7 is outside \[0, 3\)"):
        cm.update(torch.tensor([0, 7]), torch.tensor([0, 0]))
    strict = ConfusionMatrix(3)
    with pytest.raises(ValueError, match=r"label value 255 is outside \[0, 3\)"):
        strict.update(torch.tensor([0, 255]), torch.tensor([0, 0]))
    with pytest.raises(ValueError, match=r"label value -1 is outside"):
        strict.update(torch.tensor([-1, 0]), torch.tensor([0, 0]))
    with pytest.raises(ValueError, match=r"prediction value 3 is outside"):
        strict.update(torch.tensor([0, 1]), torch.tensor([0, 3]))
    with pytest.raises(ValueError, match="shape"):
        strict.update(torch.tensor([0, 1]), torch.tensor([0]))
    with pytest.raises(ValueError, match="integer"):
        strict.update(torch.tensor([0.0]), torch.tensor([0]))
    assert int(strict.mat.sum()) == 0  # failed updates add nothing
    with pytest.raises(ValueError, match="prediction value 9"):
        confusion_counts(np.array([0]), np.array([9]), 7)


def test_all_reduce_with_an_initialised_process_group(tmp_path):
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1)
    try:
        cm = ConfusionMatrix(2)
        cm.update(torch.tensor([0, 1, 1]), torch.tensor([0, 1, 0]))
        cm.all_reduce()
        assert cm.numpy().tolist() == [[1, 0], [1, 1]]
    finally:
        dist.destroy_process_group()


def test_iou_accuracy_by_hand():
    mat = np.array([[3, 1, 0], [2, 4, 0], [0, 0, 0]])
    iou = iou_per_class(mat)
    assert iou[0] == pytest.approx(3 / (4 + 5 - 3)) and iou[1] == pytest.approx(4 / (6 + 5 - 4))
    assert math.isnan(iou[2])
    assert accuracy(mat) == pytest.approx(7 / 10)
    assert per_class_accuracy(mat)[:2] == pytest.approx([3 / 4, 4 / 6])
    assert math.isnan(per_class_accuracy(mat)[2])
    assert math.isnan(accuracy(np.zeros((2, 2))))
    assert iou_per_class(torch.tensor(mat)) == pytest.approx(iou, nan_ok=True)


def test_unknown_labels_count_as_false_positives():
    mat = np.zeros((7, 7), dtype=np.int64)
    for c in range(6):
        mat[c, c] = 10
    mat[6, 0] = 10  # unknown-labelled pixels predicted as urban
    mat[1, 6] = 5  # agriculture predicted as unknown: a false negative
    result = course_miou(mat)
    assert result.per_class[0] == pytest.approx(10 / 20)
    assert result.per_class[1] == pytest.approx(10 / 15)
    assert result.per_class[2:] == [1.0] * 4
    assert result.absent == [] and result.warnings == []


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_course_miou_equals_course_script(seed, capsys):
    course = load_course_reference()
    labels, pred = random_maps(seed, shape=(2, 32, 32))
    labels[0, :4] = 6  # some unknown labels
    expected = course.mean_iou_score(pred.astype(np.float64), labels.astype(np.float64))
    printed = capsys.readouterr().out
    result = course_miou(confusion_counts(labels, pred, 7))
    assert result.mean == expected  # summed in the course's order: bit-identical
    assert format_course_lines(result) + "\n\n" == printed


def test_format_course_lines_exact():
    result = MiouResult(per_class=[0.7381, 0.5, 1 / 3, 0.0, 1.0, 0.123456], mean=0.6637041)
    assert format_course_lines(result) == (
        "class #0 : 0.73810\nclass #1 : 0.50000\nclass #2 : 0.33333\nclass #3 : 0.00000\n"
        "class #4 : 1.00000\nclass #5 : 0.12346\n\nmean_iou: 0.663704"
    )


def test_absent_class_is_named_and_mean_is_nan_like_the_course(capsys):
    labels = np.array([0, 1, 2, 3, 5, 6])
    pred = np.array([0, 1, 2, 3, 5, 0])  # water (4) absent from both
    result = course_miou(confusion_counts(labels, pred, 7))
    assert result.absent == [4]
    assert math.isnan(result.per_class[4]) and math.isnan(result.mean)
    assert result.mean_present == pytest.approx((0.5 + 1 + 1 + 1 + 1) / 5)
    assert len(result.warnings) == 1 and "class 4 (water) absent" in result.warnings[0]
    assert "0.900000" in result.warnings[0]
    lines = format_course_lines(result)
    assert "class #4 : nan" in lines and lines.endswith("mean_iou: nan")
    with np.errstate(divide="ignore", invalid="ignore"):
        load_course_reference().mean_iou_score(pred, labels)
    assert capsys.readouterr().out == lines + "\n\n"
    payload = json.loads(json.dumps(result.to_dict()))
    assert payload["mean_iou"] is None and payload["per_class"]["water"] is None
    assert payload["absent"] == ["water"] and payload["mean_iou_present"] == pytest.approx(0.9)


def test_course_miou_rejects_bad_matrices():
    with pytest.raises(ValueError, match="square"):
        course_miou(np.zeros((7, 6)))
    with pytest.raises(ValueError, match="at least 6"):
        course_miou(np.zeros((3, 3)))
