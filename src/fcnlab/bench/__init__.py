"""``fcnlab bench``: training, inference, data-path, evaluator and t-SNE throughput on the current device.

Modules: :mod:`~fcnlab.bench.timing` (sync, throughput windows, peak memory, FLOPs, matmul peak),
:mod:`~fcnlab.bench.models` (pure model steps), :mod:`~fcnlab.bench.pipeline` (fcnlab's real epoch and data
loader), :mod:`~fcnlab.bench.evaluator` (mIoU evaluators in subprocesses), :mod:`~fcnlab.bench.tsne_time`,
:mod:`~fcnlab.bench.sections` (section names, torch-free), :mod:`~fcnlab.bench.run` (what runs at which
size, what each result is measured against) and :mod:`~fcnlab.bench.report` (Markdown/JSON). Nothing is
imported here, so that building the CLI parser does not import torch.
"""
