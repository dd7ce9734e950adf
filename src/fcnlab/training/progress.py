"""Training progress: a tqdm bar with ETA on a terminal; otherwise a line after the first step, then every
30 seconds (and every ``log_every`` steps) and at the epoch's end, each with the ETA of the epoch.

A thin layer over :class:`fcnlab.runtime.progress.Progress`, which every long phase uses; training's lines go
to stdout, as the epoch summaries do, so a log file reads in order.
"""

from __future__ import annotations

import sys

from fcnlab.runtime.progress import INTERVAL
from fcnlab.runtime.progress import Progress as _Progress


class StepProgress:
    """The steps of one training epoch (``desc``: ``epoch 3/50``)."""

    def __init__(self, enabled: bool, total: int, initial: int, desc: str, log_every: int, interval: float = INTERVAL):
        self._progress = _Progress(
            total,
            desc,
            enabled=enabled,
            initial=initial,
            unit="step",
            log_every=log_every,
            interval=interval,
            quiet=0.0,
            stream=sys.stdout,
        )

    def update(self, loss: float | None) -> None:
        """One step done; ``loss`` is the epoch's running mean when it was read this step."""
        if loss is None:
            self._progress.update()
        else:
            self._progress.update(loss=loss)

    def close(self) -> None:
        self._progress.close()
