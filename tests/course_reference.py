"""The benchmark's faithful copy of the course's ``mean_iou_evaluate.py``, shared by the metric tests."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

REPO = Path(__file__).resolve().parents[1]


def load_course_reference() -> ModuleType:
    """Import ``benchmarks/course_mean_iou.py`` by path (it is a script, not part of the package)."""
    spec = importlib.util.spec_from_file_location("course_mean_iou", REPO / "benchmarks" / "course_mean_iou.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
