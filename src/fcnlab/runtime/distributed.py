"""torchrun / DDP plumbing: process-group set-up from the environment, rank helpers, reductions.

``torchrun --nproc_per_node=N -m fcnlab ...`` sets RANK, WORLD_SIZE and LOCAL_RANK; fcnlab then
initialises the default process group with ``env://`` (nccl on CUDA, gloo on CPU). Without those
variables everything runs in one process and these helpers are no-ops.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import torch
import torch.distributed as dist

from fcnlab.errors import ConfigError, DataError, FcnlabError
from fcnlab.runtime.launch import launched, launched_rank

T = TypeVar("T")


@dataclass(frozen=True)
class DistInfo:
    """Where this process stands in the job."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        """Only the main process (rank 0) writes files and prints."""
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def init_distributed(device_type: str) -> DistInfo:
    """Initialise the process group when launched by torchrun; return this process's ranks."""
    if not launched() or "WORLD_SIZE" not in os.environ:
        return DistInfo()
    rank, world = launched_rank(), int(os.environ["WORLD_SIZE"])
    local = int(os.environ.get("LOCAL_RANK", 0))
    if world > 1 and not dist.is_initialized():
        backend = "nccl" if device_type == "cuda" else "gloo"
        if device_type == "cuda":
            torch.cuda.set_device(local)
        dist.init_process_group(backend=backend, init_method="env://")
    return DistInfo(rank, world, local)


def is_dist() -> bool:
    """True inside an initialised multi-process job."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def all_reduce_sum(t: torch.Tensor) -> torch.Tensor:
    """Sum ``t`` over all processes in place (no-op in a single process); returns ``t``."""
    if is_dist():
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t


def max_over_processes(values: torch.Tensor) -> list[int]:
    """Element-wise maximum of an int64 vector over all processes, as Python ints (one host sync)."""
    values = values.clone()
    if is_dist():
        dist.all_reduce(values, op=dist.ReduceOp.MAX)
    return [int(v) for v in values.tolist()]


def gather_to_main(obj: Any) -> list[Any] | None:
    """Every process's ``obj`` as a list on rank 0 (None elsewhere); ``[obj]`` in a single process."""
    if not is_dist():
        return [obj]
    out: list[Any] | None = [None] * dist.get_world_size() if dist.get_rank() == 0 else None
    dist.gather_object(obj, out, dst=0)
    return out


def broadcast_buffers(module: torch.nn.Module) -> None:
    """Copy rank 0's buffers (BatchNorm running statistics) to every process."""
    if is_dist():
        for buf in module.buffers():
            dist.broadcast(buf, src=0)


def on_main(fn: Callable[[], T], fallback: T) -> T:
    """Run ``fn`` on rank 0 only; an FcnlabError there is raised on every rank (no rank is left waiting).

    Other ranks get ``fallback``. Without a process group this is just ``fn()``.
    """
    if not is_dist():
        return fn()
    if dist.get_rank() == 0:
        try:
            result = fn()
        except FcnlabError as e:
            dist.broadcast_object_list([(type(e).__name__, str(e))], src=0)
            raise
        dist.broadcast_object_list([None], src=0)
        return result
    box: list[Any] = [None]
    dist.broadcast_object_list(box, src=0)
    if box[0] is not None:
        kind, message = box[0]
        raise (ConfigError if kind == "ConfigError" else DataError)(message)
    return fallback


def shutdown() -> None:
    """Destroy the process group if this process created one."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
