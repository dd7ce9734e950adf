"""``fcnlab bench``: training, inference, data-path, evaluator and t-SNE throughput on the current device.

Modules: :mod:`~fcnlab.bench.timing` (sync, throughput windows, peak memory, FLOPs, matmul peak),
:mod:`~fcnlab.bench.models` (pure model steps), :mod:`~fcnlab.bench.pipeline` (fcnlab's real epoch and data
loader), :mod:`~fcnlab.bench.evaluator` (mIoU evaluators in subprocesses), :mod:`~fcnlab.bench.tsne_time`,
:mod:`~fcnlab.bench.run` (sections and targets) and :mod:`~fcnlab.bench.report` (Markdown/JSON output).
"""

from fcnlab.bench.report import to_markdown, write_outputs
from fcnlab.bench.run import SECTIONS, BenchOptions, parse_only, run_bench

__all__ = ["SECTIONS", "BenchOptions", "parse_only", "run_bench", "to_markdown", "write_outputs"]
