"""Where and how fcnlab runs: device, precision and seeding (:mod:`~fcnlab.runtime.device`), torchrun/DDP
(:mod:`~fcnlab.runtime.distributed`), host memory (:mod:`~fcnlab.runtime.host_memory`), usable CPU cores
(:mod:`~fcnlab.runtime.cores`) and atomic file writes
(:mod:`~fcnlab.runtime.files`).

Training, inference and benchmarks all use these; nothing here imports a model or a task.
"""
