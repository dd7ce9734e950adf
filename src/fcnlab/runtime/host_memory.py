"""Keep freed host memory for reuse (glibc), so CPU training does not page-fault its activations every step.

glibc's ``malloc`` serves blocks above 32 MB with fresh ``mmap`` pages and returns them to the kernel when
freed. A training step at 512x512 allocates and frees several GB of activations and gradients, so every
step page-faults them in again and the kernel zeroes each page. Serving all blocks from the heap and not
trimming it lets the next step reuse the memory, for some more resident memory (compare
``fcnlab bench --only fcn32s_vgg16`` with and without ``FCNLAB_MALLOC=system``; numbers in
docs/BENCHMARKS.md). PyTorch's CPU tuning guide gets the same effect by preloading jemalloc or tcmalloc.

The CLI calls :func:`keep_freed_memory` at start-up; ``FCNLAB_MALLOC=system`` turns it off.
"""

from __future__ import annotations

import ctypes
import os
import sys

M_TRIM_THRESHOLD = -1  # mallopt parameters, from glibc's malloc.h
M_MMAP_MAX = -4
TRIM_THRESHOLD = 2**31 - 1  # the largest value mallopt takes: keep up to 2 GB free at the top of the heap


def keep_freed_memory() -> bool:
    """Tell glibc to serve large blocks from the heap and keep freed memory; True if it took effect.

    A no-op (False) off Linux, with another C library (musl has no ``mallopt``), and when
    ``FCNLAB_MALLOC=system`` is set.
    """
    if sys.platform != "linux" or os.environ.get("FCNLAB_MALLOC", "").lower() == "system":
        return False
    try:
        libc = ctypes.CDLL(None)
        mallopt = libc.mallopt
        libc.gnu_get_libc_version  # noqa: B018  (glibc only: the parameters above are glibc's)
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    return bool(mallopt(M_MMAP_MAX, 0)) and bool(mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD))
