"""``train --procs N``: N training processes on this machine joined by PyTorch's DDP, started as ``torchrun
--standalone --nproc_per_node N`` would start them (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR``,
``MASTER_PORT``; :func:`fcnlab.runtime.distributed.init_distributed` joins them), with one exit code.

Why not torchrun itself: when a process fails, its agent prints a stack of Python frames for a bad option,
where fcnlab prints one line and exits 2. Here the first process that fails stops the others and its exit
code is the command's. On the CPU each process gets ``usable cores / N`` torch threads unless
``OMP_NUM_THREADS`` is set: on a 2-core laptop two one-thread processes trained p2_laptop 1.49x faster than one
process (docs/ENGINEERING.md, "P2 on a laptop").
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from typing import Any

from fcnlab.runtime.cores import usable_cores


def launched() -> bool:
    """True inside a process started by torchrun or :func:`run_processes` (``RANK`` is set)."""
    return "RANK" in os.environ


def _free_port() -> int:
    """A TCP port on the loopback interface that nothing listens on now (the rendezvous of the processes)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def process_env(procs: int, rank: int, port: int, base: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of process ``rank`` of ``procs``: torchrun's variables and, unless set, torch threads."""
    env = dict(os.environ if base is None else base)
    env.setdefault("OMP_NUM_THREADS", str(max(1, usable_cores() // procs)))
    env.update(
        RANK=str(rank),
        LOCAL_RANK=str(rank),
        WORLD_SIZE=str(procs),
        LOCAL_WORLD_SIZE=str(procs),
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
    )
    return env


def run_processes(procs: int, argv: Sequence[str], poll_s: float = 0.2, command: Sequence[str] | None = None) -> int:
    """Run ``python -m fcnlab *argv`` (or ``command``) as ``procs`` DDP processes; return 0, or the first
    failure's exit code.

    The processes share the terminal (rank 0 prints, the others stay silent); Ctrl-C reaches them all, a
    SIGTERM sent to this process is passed on to them (training saves a resumable last.pt and stops), and a
    process that fails stops the others.
    """
    port = _free_port()
    program = list(command) if command is not None else [sys.executable, "-m", "fcnlab", *argv]
    children = [subprocess.Popen(program, env=process_env(procs, rank, port)) for rank in range(procs)]
    previous = _pass_on_sigterm(children)
    try:
        while True:
            codes = [c.poll() for c in children]
            failed = next((code for code in codes if code not in (None, 0)), None)
            if failed is not None:
                _stop(children)
                return failed
            if all(code == 0 for code in codes):
                return 0
            time.sleep(poll_s)
    except KeyboardInterrupt:  # the terminal's Ctrl-C went to the children too; give them time to save
        _stop(children, signal.SIGINT, grace_s=60.0)
        raise
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _pass_on_sigterm(children: list[subprocess.Popen]) -> Any:
    """Forward SIGTERM to ``children`` (which then exit, and the polling loop returns their code); return the
    handler it replaced, or None off the main thread, where Python cannot set handlers."""

    def forward(signum: int, frame: Any) -> None:  # noqa: ARG001
        for c in children:
            if c.poll() is None:
                c.send_signal(signal.SIGTERM)

    try:
        return signal.signal(signal.SIGTERM, forward)
    except ValueError:
        return None


def _stop(children: list[subprocess.Popen], sig: int = signal.SIGTERM, grace_s: float = 10.0) -> None:
    """Send ``sig`` to the children still running, wait up to ``grace_s``, then kill what is left."""
    for c in children:
        if c.poll() is None:
            c.send_signal(sig)
    deadline = time.monotonic() + grace_s
    for c in children:
        try:
            c.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            c.kill()
            c.wait()
