"""``train --procs N``: N training processes on this machine joined by PyTorch's DDP, started as ``torchrun
--standalone --nproc_per_node N`` would start them (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR``,
``MASTER_PORT``; :func:`fcnlab.runtime.distributed.init_distributed` joins them), with one exit code.

Why not torchrun itself: when a process fails, its agent prints a stack of Python frames for a bad option,
where fcnlab prints one line and exits 2. Here the first process that fails stops the others and its exit
code is the command's. On the CPU each process gets ``usable cores / N`` torch threads unless
``OMP_NUM_THREADS`` is set: on 2 cores two one-thread processes trained p2_laptop 1.49x (AMD Zen 4) and 1.32x
(Zen 3) faster than one process (docs/BENCHMARKS.md, "CPUs without AVX-512").
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from fcnlab.runtime.cores import usable_cores


def launched() -> bool:
    """True inside a process started by torchrun or :func:`run_processes` (``RANK`` is set)."""
    return "RANK" in os.environ


def launched_rank() -> int:
    """This process's rank as its launcher set it (``RANK``), readable before any process group exists; 0 in a
    plain process or when ``RANK`` is empty or not a number."""
    try:
        return int(os.environ.get("RANK", "0") or 0)
    except ValueError:
        return 0


def _free_port() -> int:
    """A TCP port on the loopback interface that nothing listens on now (the rendezvous of the processes)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


#: Set for processes other than rank 0: they print their one-line errors too (into a file the launcher reads),
#: which fcnlab's CLI otherwise prints on rank 0 alone.
RANK_ERRORS = "FCNLAB_RANK_ERRORS"


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
    if rank > 0:
        env[RANK_ERRORS] = "1"
    return env


def run_processes(procs: int, argv: Sequence[str], poll_s: float = 0.2, command: Sequence[str] | None = None) -> int:
    """Run ``python -m fcnlab *argv`` (or ``command``) as ``procs`` DDP processes; return 0, or the first
    failure's exit code.

    Rank 0 writes to the terminal; the others' stderr goes to a file, whose last error line is printed when one
    of them fails and rank 0 has not failed too (a GPU that rank 0 has and rank 1 lacks, say). Ctrl-C reaches
    every process, a SIGTERM sent to this process is passed on to them (training saves a resumable last.pt and
    stops), and a process that fails stops the others.
    """
    port = _free_port()
    program = list(command) if command is not None else [sys.executable, "-m", "fcnlab", *argv]
    with tempfile.TemporaryDirectory(prefix="fcnlab-procs-") as logs:
        errors = {rank: Path(logs) / f"rank{rank}.err" for rank in range(1, procs)}  # rank 0: the terminal
        children = [subprocess.Popen(program, env=process_env(procs, 0, port))]
        for rank, path in errors.items():
            with open(path, "w") as err:  # the child keeps its own copy of the descriptor
                children.append(subprocess.Popen(program, env=process_env(procs, rank, port), stderr=err))
        previous = _pass_on_sigterm(children)
        try:
            return _wait(children, errors, poll_s)
        except KeyboardInterrupt:  # the terminal's Ctrl-C went to the children too; give them time to save
            _stop(children, signal.SIGINT, grace_s=60.0)
            raise
        finally:
            if previous is not None:
                signal.signal(signal.SIGTERM, previous)


def _wait(children: list[subprocess.Popen], errors: dict[int, Path], poll_s: float) -> int:
    """Poll until every child has exited with 0, or one has failed (then stop the rest); the exit code."""
    while True:
        codes = [c.poll() for c in children]
        failed = next((rank for rank, code in enumerate(codes) if code not in (None, 0)), None)
        if failed is not None:
            _settle(children, 2.0)  # rank 0 may be failing the same way: let it say so
            rank0_failed = children[0].poll() not in (None, 0)
            _stop(children)
            if failed > 0 and not rank0_failed:
                lines = [ln for ln in errors[failed].read_text(errors="replace").splitlines() if ln.strip()]
                if lines:
                    print(f"{lines[-1]} (process {failed} of {len(children)})", file=sys.stderr)
            return int(children[failed].returncode)
        if all(code == 0 for code in codes):
            return 0
        time.sleep(poll_s)


def _pass_on_sigterm(children: list[subprocess.Popen]) -> Any:
    """Forward SIGTERM to ``children`` (which then exit, and the polling loop returns their code); return the
    handler it replaced, or None off the main thread, where Python cannot set handlers."""

    def forward(signum: int, frame: Any) -> None:  # noqa: ARG001
        _signal(children, signal.SIGTERM)

    try:
        return signal.signal(signal.SIGTERM, forward)
    except ValueError:
        return None


def _signal(children: list[subprocess.Popen], sig: int) -> None:
    """Send ``sig`` to the children still running."""
    for c in children:
        if c.poll() is None:
            c.send_signal(sig)


def _settle(children: list[subprocess.Popen], grace_s: float) -> None:
    """Wait up to ``grace_s`` in all for the children to exit; those still running are left running."""
    deadline = time.monotonic() + grace_s
    for c in children:
        try:
            c.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            pass


def _stop(children: list[subprocess.Popen], sig: int = signal.SIGTERM, grace_s: float = 10.0) -> None:
    """Send ``sig`` to the children still running, wait up to ``grace_s``, then kill what is left."""
    _signal(children, sig)
    _settle(children, grace_s)
    for c in children:
        if c.poll() is None:
            c.kill()
            c.wait()
