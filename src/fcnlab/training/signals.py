"""SIGINT/SIGTERM during training: finish the current step, save a resumable ``last.pt``, exit 130/143.

The handler only records the signal (``TrainState.stop_signal``); the loop saves and raises
:class:`Interrupted` at the next step where it may stop. A second signal stops at once.
"""

from __future__ import annotations

import signal
import threading
from typing import TYPE_CHECKING, Any

from fcnlab.errors import FcnlabError

if TYPE_CHECKING:
    from fcnlab.training.state import TrainState


class Interrupted(FcnlabError):
    """Training stopped by SIGINT/SIGTERM after saving a resumable checkpoint."""

    def __init__(self, message: str, exit_code: int):
        super().__init__(message)
        self.exit_code = exit_code



def interrupted(state: TrainState) -> Interrupted:
    """The exception for a SIGINT/SIGTERM stop, after ``last.pt`` was saved at the current position."""
    sig = state.stop_signal or signal.SIGTERM
    return Interrupted(f"stopped by {signal.Signals(sig).name} at {state.last_saved}; resumable checkpoint "
                       f"{state.run_dir / 'last.pt'}; continue with --resume {state.run_dir}",
                       130 if sig == signal.SIGINT else 143)


def install_signal_handlers(state: TrainState) -> dict[int, Any]:
    """Record SIGINT/SIGTERM in ``state.stop_signal`` (main thread only); return the previous handlers."""
    if threading.current_thread() is not threading.main_thread():
        return {}

    def handler(signum, frame):  # noqa: ARG001
        if state.stop_signal is not None:  # second signal: stop now
            raise KeyboardInterrupt
        state.stop_signal = signum

    previous: dict[int, Any] = {}
    for sig in (signal.SIGINT, signal.SIGTERM):
        previous[sig] = signal.signal(sig, handler)
    return previous


def restore_signal_handlers(previous: dict[int, Any]) -> None:
    """Put back the handlers :func:`install_signal_handlers` replaced."""
    for sig, h in previous.items():
        signal.signal(sig, h)
