"""Progress of long phases (training epochs, validation, evaluation, prediction, t-SNE, the first decode).

On a terminal: a tqdm bar with rate and ETA. Otherwise (a log file, a pipe, a batch job): plain lines, the
first after the first step, then every ``interval`` seconds (and every ``log_every`` steps when given) and
at the last step, each with the step, the elapsed time and the ETA. Phases that end within ``quiet``
seconds show nothing, so quick commands keep their output short. Only the main process reports
(``enabled``, by default: ``$RANK`` unset or 0). Lines go to stderr unless ``stream`` says otherwise, so
results on stdout stay clean.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterable, Iterator
from typing import TypeVar

from fcnlab.runtime.launch import launched_rank

T = TypeVar("T")

#: Seconds between plain log lines when output is not a terminal.
INTERVAL = 30.0
#: Phases shorter than this show no progress (a bar appears, or the first line is printed, after it).
QUIET = 3.0


def main_process() -> bool:
    """Rank 0 of a torchrun job, or a plain process (``$RANK`` unset)."""
    return launched_rank() == 0


def fmt_duration(seconds: float) -> str:
    """``42s``, ``3m05s`` or ``1h02m``."""
    seconds = max(0.0, seconds)
    if seconds < 60:
        return f"{seconds:.0f}s"
    if seconds < 3600:
        return f"{int(seconds // 60)}m{int(seconds % 60):02d}s"
    return f"{int(seconds // 3600)}h{int(seconds % 3600 // 60):02d}m"


def is_terminal() -> bool:
    """Whether progress goes to a terminal (stderr), where a live bar works."""
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):
        return False


class Progress:
    """Progress of ``total`` steps named ``desc``: a bar on a terminal, time-based log lines otherwise."""

    def __init__(
        self,
        total: int,
        desc: str,
        *,
        enabled: bool = True,
        initial: int = 0,
        unit: str = "step",
        log_every: int = 0,
        interval: float = INTERVAL,
        quiet: float | None = None,
        terminal: bool | None = None,
        stream=None,
    ):  # noqa: ANN001 - a text stream
        self.total, self.desc, self.enabled, self.unit = total, desc, enabled and main_process(), unit
        self.quiet = QUIET if quiet is None else quiet  # read here, so a test can lower QUIET
        self.log_every, self.interval = log_every, interval
        self.step = self.initial = initial
        self.start = time.perf_counter()
        self.last_line: float | None = None
        self.stream = stream if stream is not None else sys.stderr
        self.bar = None
        self.postfix = ""
        if self.enabled and (is_terminal() if terminal is None else terminal):
            from tqdm import tqdm

            self.bar = tqdm(
                total=total, initial=initial, desc=desc, unit=unit, dynamic_ncols=True, leave=False, delay=self.quiet
            )

    def eta(self) -> float | None:
        """Seconds left at the mean speed so far (None before the first step)."""
        done = self.step - self.initial
        if done <= 0:
            return None
        return (time.perf_counter() - self.start) / done * max(self.total - self.step, 0)

    def line(self) -> str:
        """``epoch 3/50 step 120/400 loss 1.2345 (1m05s, ETA 2m32s)``."""
        elapsed = time.perf_counter() - self.start
        eta = self.eta()
        tail = f"{fmt_duration(elapsed)}" + (f", ETA {fmt_duration(eta)}" if eta is not None else "")
        return f"{self.desc} {self.unit} {self.step}/{self.total}{self.postfix} ({tail})"

    def update(self, n: int = 1, **values: float) -> None:
        """``n`` more steps done; ``values`` (``loss=1.23``) are shown with them."""
        self.step += n
        if not self.enabled:
            return
        self.postfix = "".join(f" {k} {v:.4f}" for k, v in values.items())
        if self.bar is not None:
            self.bar.update(n)
            if values:
                self.bar.set_postfix({k: f"{v:.4f}" for k, v in values.items()})
            return
        now = time.perf_counter()
        if now - self.start < self.quiet:
            return
        due = (
            self.last_line is None  # the first step (past ``quiet``): a line soon after the start
            or now - self.last_line >= self.interval
            or (self.log_every and self.step % self.log_every == 0)
            or self.step >= self.total
        )
        if due:
            print(self.line(), file=self.stream, flush=True)
            self.last_line = now

    def close(self) -> None:
        """Remove the bar (the caller prints the phase's summary)."""
        if self.bar is not None:
            self.bar.close()
            self.bar = None

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def track(
    items: Iterable[T], total: int, desc: str, *, enabled: bool = True, unit: str = "step", **kwargs
) -> Iterator[T]:  # noqa: ANN003 - Progress options
    """Iterate ``items`` while showing a :class:`Progress` of ``total`` steps."""
    with Progress(total, desc, enabled=enabled, unit=unit, **kwargs) as progress:
        for item in items:
            yield item
            progress.update()
