"""Short texts a report shows for numbers and machines: durations, the device of a run."""

from __future__ import annotations

import math


def fmt_seconds(seconds: float) -> str:
    """``12.3 s``, ``4 min 05 s`` or ``2 h 03 min``."""
    if math.isnan(seconds):
        return "-"
    if seconds < 60:
        return f"{seconds:.1f} s"
    if seconds < 3600:
        return f"{int(seconds // 60)} min {int(seconds % 60):02d} s"
    return f"{int(seconds // 3600)} h {int(seconds % 3600 // 60):02d} min"


def device_text(env: dict) -> str:
    """The hardware of ``env.json`` in a few words."""
    if not env:
        return "-"
    if env.get("cuda") and env.get("gpu"):
        return f"{env['gpu']} (CUDA {env.get('cuda_version', '?')})"
    cores = env.get("cpu_count")
    return f"CPU {env.get('cpu', '')}".strip() + (f", {cores} cores" if cores else "")
