"""SIGINT/SIGTERM during training: finish the current step, save a resumable ``last.pt``, exit 130/143.

The handler only records the signal (``TrainState.stop_signal``); the loop saves and raises
:class:`Interrupted` at the next step where it may stop. A second signal stops at once
(:class:`StoppedAtOnce`), except while a checkpoint is being written or waited for (:func:`finishing_writes`):
cutting ``torch.save`` short gave two chained tracebacks, so signals then are only recorded, the write
finishes and the stop follows it. Either way one line says which checkpoint is on disk.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from fcnlab.errors import FcnlabError

if TYPE_CHECKING:
    from fcnlab.training.state import TrainState


class Interrupted(FcnlabError):
    """Training stopped by SIGINT/SIGTERM after saving a resumable checkpoint."""

    def __init__(self, message: str, exit_code: int):
        super().__init__(message)
        self.exit_code = exit_code


class StoppedAtOnce(KeyboardInterrupt):
    """A second SIGINT/SIGTERM outside a checkpoint write: training stops where it is. A KeyboardInterrupt, so
    that no ``except Exception`` on the way swallows it; the CLI prints its one line and exits with
    :attr:`exit_code`."""

    def __init__(self, message: str, exit_code: int):
        super().__init__(message)
        self.exit_code = exit_code


def _exit_code(sig: int) -> int:
    return 130 if sig == signal.SIGINT else 143


@contextlib.contextmanager
def finishing_writes(state: TrainState) -> Iterator[None]:
    """A block that writes a checkpoint or waits for one: signals meanwhile are recorded, never raised in it."""
    state.writing += 1
    try:
        yield
    finally:
        state.writing -= 1


def stopped_at_once(state: TrainState, sig: int) -> StoppedAtOnce:
    """The exception of a second signal; its line says what ``last.pt`` holds once pending writes are done."""
    last = state.run_dir / "last.pt"
    if state.last_saved:
        saved = f"resumable checkpoint {last} (saved at {state.last_saved}); continue with --resume {state.run_dir}"
    elif last.is_file():
        saved = f"{last} is the checkpoint this run resumed from; continue with --resume {state.run_dir}"
    else:
        saved = "no checkpoint was saved yet"
    return StoppedAtOnce(f"stopped at once by a second {signal.Signals(sig).name}; {saved}", _exit_code(sig))


def interrupted(state: TrainState) -> Interrupted:
    """The exception for a SIGINT/SIGTERM stop, after ``last.pt`` was saved at the current position."""
    sig = state.stop_signal or signal.SIGTERM
    return Interrupted(
        f"stopped by {signal.Signals(sig).name} at {state.last_saved}; resumable checkpoint "
        f"{state.run_dir / 'last.pt'}; continue with --resume {state.run_dir}",
        _exit_code(sig),
    )


def install_signal_handlers(state: TrainState) -> dict[int, Any]:
    """Record SIGINT/SIGTERM in ``state.stop_signal`` (main thread only); return the previous handlers."""
    if threading.current_thread() is not threading.main_thread():
        return {}

    def handler(signum, frame):  # noqa: ARG001
        if state.stop_signal is None:
            state.stop_signal = signum
        elif not state.writing:  # second signal: stop now (a write in progress finishes first)
            raise stopped_at_once(state, signum)

    previous: dict[int, Any] = {}
    for sig in (signal.SIGINT, signal.SIGTERM):
        previous[sig] = signal.signal(sig, handler)
    return previous


def restore_signal_handlers(previous: dict[int, Any]) -> None:
    """Put back the handlers :func:`install_signal_handlers` replaced."""
    for sig, h in previous.items():
        signal.signal(sig, h)
