"""Export formats and their settings, without torch: ``fcnlab --help`` lists them without loading it."""

from __future__ import annotations

FORMATS = ("onnx", "torch-export")
MIN_OPSET = 17
#: Example size for FCNs: only tracing uses it (height and width stay dynamic), so small is fast.
FCN_EXAMPLE_SIZE = (64, 64)
