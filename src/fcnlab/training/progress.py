"""Training progress: a tqdm bar with ETA on a terminal, plain log lines otherwise."""

from __future__ import annotations

import sys
import time


class Progress:
    """tqdm bar with ETA on a terminal, plain log lines every ``log_every`` steps otherwise."""

    def __init__(self, enabled: bool, total: int, initial: int, desc: str, log_every: int):
        self.enabled, self.total, self.log_every, self.desc = enabled, total, log_every, desc
        self.bar = None
        self.start = time.perf_counter()
        self.step = initial
        if enabled and sys.stderr.isatty():
            from tqdm import tqdm

            self.bar = tqdm(total=total, initial=initial, desc=desc, dynamic_ncols=True, leave=False)

    def update(self, loss: float | None) -> None:
        self.step += 1
        if not self.enabled:
            return
        if self.bar is not None:
            self.bar.update(1)
            if loss is not None:
                self.bar.set_postfix(loss=f"{loss:.4f}")
        elif self.log_every and (self.step % self.log_every == 0 or self.step == self.total):
            el = time.perf_counter() - self.start
            print(f"{self.desc} step {self.step}/{self.total}" + (f" loss {loss:.4f}" if loss is not None else "")
                  + f" ({el:.0f}s)", flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()

