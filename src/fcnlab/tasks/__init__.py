"""Everything that differs between classification (P1) and segmentation (P2), one module per task.

:class:`~fcnlab.tasks.base.Task` is the interface training, inference and export use;
:mod:`~fcnlab.tasks.classify` and :mod:`~fcnlab.tasks.segment` implement it and :func:`make_task` picks one
for a config. :func:`task_info` (from the leaf :mod:`fcnlab.taskinfo`, re-exported) describes a task by name
without importing torch, so this package imports its torch modules only when they are used.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from fcnlab.taskinfo import INFO, TASKS, TaskInfo, eval_batch_size, task_info

if TYPE_CHECKING:
    from fcnlab.config import TrainConfig
    from fcnlab.tasks.base import Task

_CLASSES = {
    "classify": ("fcnlab.tasks.classify", "ClassificationTask"),
    "segment": ("fcnlab.tasks.segment", "SegmentationTask"),
}
_LAZY = {
    "Task": ("fcnlab.tasks.base", "Task"),
    "ClassificationTask": _CLASSES["classify"],
    "SegmentationTask": _CLASSES["segment"],
    "class_weights": ("fcnlab.tasks.segment", "class_weights"),
}

__all__ = ["INFO", "TASKS", "TaskInfo", "eval_batch_size", "make_task", "task_class", "task_info", *_LAZY]


def task_class(name: str) -> type[Task]:
    """The Task class of task ``name``."""
    module, attr = _CLASSES[name]
    return getattr(importlib.import_module(module), attr)


def make_task(cfg: TrainConfig) -> Task:
    """The Task object for ``cfg.task``."""
    return task_class(cfg.task)(cfg)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        module, attr = _LAZY[name]
        return getattr(importlib.import_module(module), attr)
    raise AttributeError(f"module 'fcnlab.tasks' has no attribute {name!r}")
