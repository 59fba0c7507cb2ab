"""Compiled CPU kernels: C files beside this one, built once per machine and loaded with ctypes.

Each is compiled with the system's C compiler (``$CC``, else ``cc``) into
``~/.cache/memn2n/kernels``, keyed by its source, the flags and the processor (-march=native), and
renamed into place when complete. Its OpenMP threads are PyTorch's own (the same ``libgomp``), so
``torch.set_num_threads`` governs both. Where a kernel cannot be built (no compiler, no OpenMP),
``build`` says so once and returns None, and the caller takes its plain PyTorch path.
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import logging
import os
import platform
import subprocess
import tempfile
from pathlib import Path

from torch import Tensor

log = logging.getLogger("memn2n")
FLAGS = ["-O3", "-march=native", "-fopenmp", "-ffp-contract=fast", "-shared", "-fPIC"]


def _cpu() -> str:
    """What -march=native compiles for: a kernel built on another processor may not run here."""
    try:
        return next(line for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("flags"))
    except (OSError, StopIteration):
        return platform.processor()


@functools.cache
def build(name: str, what: str) -> ctypes.CDLL | None:
    """The compiled ``memn2n_cli/<name>.c``, building it on first use; None where it cannot be
    built (``what`` names it in the warning)."""
    source = Path(__file__).with_name(f"{name}.c")
    compiler = os.environ.get("CC", "cc")
    key = hashlib.sha256("\0".join([source.read_text(), compiler, *FLAGS, _cpu()]).encode()).hexdigest()[:16]
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "memn2n" / "kernels"
    path = cache / f"{name}-{key}.so"
    try:
        if not path.exists():
            cache.mkdir(parents=True, exist_ok=True)
            with tempfile.TemporaryDirectory(dir=cache) as scratch:  # built aside, then renamed: atomic
                built = Path(scratch) / path.name
                subprocess.run([compiler, *FLAGS, str(source), "-o", str(built)], check=True, capture_output=True,
                               text=True, timeout=120)
                os.replace(built, path)
        return ctypes.CDLL(str(path))
    except (OSError, subprocess.SubprocessError) as e:
        detail = (getattr(e, "stderr", None) or str(e)).strip().splitlines()
        log.warning("%s could not be built (%s); using the plain PyTorch path, several times slower on the CPU",
                    what, detail[0] if detail else type(e).__name__)
        return None


def call(function, *args, what: str) -> None:
    """Call a kernel function with tensors passed as pointers (None as NULL); -1 means out of memory."""
    pointers = [a.data_ptr() if isinstance(a, Tensor) else a for a in args]
    if function(*pointers) != 0:
        raise MemoryError(f"{what} ran out of memory")
