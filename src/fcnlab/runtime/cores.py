"""The CPU cores this process may use: its affinity (``taskset``, a container's CPU set), not the machine's."""

from __future__ import annotations

import os


def usable_cores() -> int:
    """Cores this process may run on (what torch's DataLoader checks its worker count against); at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not on Linux
        return os.cpu_count() or 1
