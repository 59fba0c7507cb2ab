"""Keep freed memory in the process instead of handing it back to the kernel after every step.

glibc's malloc serves large blocks with mmap and returns them when freed, so each training step
maps its tensors afresh and the kernel zeroes every page again: a 10-restart task-3 benchmark took
about 370,000 page faults and a tenth of its time in the kernel (BENCHMARKS.md, "Page faults").
Serving blocks up to 32 MiB from the heap and keeping up to 1 GiB of it free avoids that.
"""

from __future__ import annotations

import ctypes
import sys

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # mallopt parameters (malloc.h)


def keep_freed_memory() -> bool:
    """Raise glibc's mmap and trim thresholds for this process; False where that is not possible."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt  # the C library the process already uses
    except (OSError, AttributeError):
        return False
    return bool(mallopt(M_MMAP_THRESHOLD, 32 << 20)) and bool(mallopt(M_TRIM_THRESHOLD, 1 << 30))
