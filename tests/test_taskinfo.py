"""The task facts of :mod:`fcnlab.taskinfo`: one place for each, read by the config, the CLI and inference."""

from __future__ import annotations

import argparse
import ast
from pathlib import Path

import pytest

from fcnlab import taskinfo
from fcnlab.cli.common import add_tta
from fcnlab.config import from_dict
from fcnlab.infer.tta import CLASSIFY_TTA, SEGMENT_TTA
from fcnlab.taskinfo import TASKS, eval_batch_size, task_info


def test_the_leaf_imports_nothing_from_fcnlab_at_run_time():
    tree = ast.parse(Path(taskinfo.__file__).read_text())
    names = [n.module for n in tree.body if isinstance(n, ast.ImportFrom)]
    assert not [m for m in names if m and m.startswith("fcnlab")]


@pytest.mark.parametrize("task", TASKS)
def test_cli_choices_and_inference_take_the_tta_modes_from_the_task(task):
    parser = argparse.ArgumentParser()
    add_tta(parser, task)
    tta = next(a for a in parser._actions if a.dest == "tta")
    assert tuple(tta.choices) == task_info(task).tta_modes
    assert (SEGMENT_TTA if task_info(task).dense else CLASSIFY_TTA) == task_info(task).tta_modes


def test_eval_batch_size_doubles_except_dense_inference_and_an_explicit_size_wins():
    p1 = from_dict({"task": "classify", "batch_size": 16})
    p2 = from_dict({"task": "segment", "batch_size": 8})
    assert eval_batch_size(p1) == eval_batch_size(p1, inference=True) == 32
    assert eval_batch_size(p2) == 16 and eval_batch_size(p2, inference=True) == 8
    assert eval_batch_size(from_dict({"task": "segment", "eval_batch_size": 3}), inference=True) == 3
