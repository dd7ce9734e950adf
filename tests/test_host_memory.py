"""The CLI keeps freed host memory for reuse (glibc): a freed large block stays in the process for the next one."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

PROBE = """
import os, sys
import numpy as np
from fcnlab.runtime.host_memory import keep_freed_memory

def rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")

took = keep_freed_memory() if sys.argv[1] == "on" else False
a = np.ones(256 * 2**20, dtype=np.uint8)   # 256 MB: far above glibc's largest mmap threshold
held = rss()
del a
print(int(took), held - rss())   # bytes given back to the kernel by the free
"""


def probe(mode: str, env: dict[str, str] | None = None) -> tuple[bool, int]:
    """(whether the setting took effect, bytes of resident memory the process gave back on free)."""
    out = subprocess.run(
        [sys.executable, "-c", PROBE, mode], capture_output=True, text=True, check=True, env=env
    ).stdout.split()
    return bool(int(out[0])), int(out[1])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_freed_memory_is_kept_only_when_enabled():
    took, returned_on = probe("on")
    if not took:
        pytest.skip("not glibc")
    _, returned_off = probe("off")
    assert returned_off > 200 * 2**20  # default: unmapped at once, so the next step faults it in again
    assert returned_on < 16 * 2**20  # kept in the heap for reuse


def test_opt_out():
    env = {**os.environ, "FCNLAB_MALLOC": "system"}
    took, _ = probe("on", env)
    assert not took


def test_console_script_and_module_use_the_entry_point():
    from pathlib import Path

    import fcnlab

    root = Path(fcnlab.__file__).parent
    assert "entry()" in (root / "__main__.py").read_text()
    assert 'fcnlab = "fcnlab.cli.main:entry"' in (root.parents[1] / "pyproject.toml").read_text()
