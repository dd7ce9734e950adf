"""fcnlab: train, evaluate and explain VGG/ResNet classifiers and FCN segmentation models.

The Python API mirrors the command line (see :mod:`fcnlab.api`)::

    import fcnlab
    model = fcnlab.build_model("fcn8s_resnet34")                      # 7 classes
    summary = fcnlab.train("p2_fcn8s_resnet34", "runs/fcn8s", data="p2_data/train",
                           val="p2_data/validation", epochs=5)
    masks = fcnlab.predict_masks("runs/fcn8s", "p2_data/validation")   # list of (H, W) class ids
    print(fcnlab.evaluate_masks("p2_data/validation", "pred").mean)

The functions are imported on first use, so ``import fcnlab`` loads neither torch nor numpy.
"""

from __future__ import annotations

import importlib as _importlib
from typing import Any as _Any

__version__ = "0.1.0"

#: Public functions, all defined in :mod:`fcnlab.api`.
API = (
    "build_model",
    "load_checkpoint",
    "predict_masks",
    "predict_labels",
    "evaluate_masks",
    "train",
    "compare_runs",
    "write_report",
)

__all__ = ["__version__", *API]


def __getattr__(name: str) -> _Any:
    if name in API:
        value = getattr(_importlib.import_module("fcnlab.api"), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'fcnlab' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({n for n in globals() if not n.startswith("_")} | set(API) | {"__version__"})
