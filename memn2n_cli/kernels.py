"""Compiled CPU kernels: C files beside this one, built once per machine and loaded with ctypes.

Each is compiled with the system's C compiler (``$CC``, else ``cc``) into
``~/.cache/memn2n/kernels``, keyed by its source, the flags and the processor (-march=native), and
renamed into place when complete. Its OpenMP threads are PyTorch's own (the same ``libgomp``), so
``torch.set_num_threads`` governs both. A compiler without OpenMP (macOS's clang) gets a serial
build: one thread, its ``omp simd`` loops vectorised as in the threaded build (-fopenmp-simd), so
that both compute the same sums. Where a kernel cannot be built at all, ``build`` says so once and
returns None, and the caller takes its plain PyTorch path.

The boundary is typed: each kernel declares its C function's arguments (`declare`), and `call`
checks every tensor against its pointer's C type (dtype, device, contiguity), so a tensor of
another dtype, or on another device, or not contiguous, is a ValueError, never memory read as
the wrong type. Sizes and index ranges, which the C code does not check, each kernel's Python
side checks before its call.
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

import torch
from torch import Tensor

log = logging.getLogger("memn2n")
FLAGS = ["-O3", "-march=native", "-ffp-contract=fast", "-shared", "-fPIC"]
THREADED, SERIAL = "-fopenmp", "-fopenmp-simd"  # with OpenMP's threads; without (its simd loops only)
C_DTYPES = {ctypes.c_int32: torch.int32, ctypes.c_int64: torch.int64, ctypes.c_float: torch.float32,
            ctypes.c_double: torch.float64}  # what a pointer of each C type must point to


class Unavailable(Exception):
    """A kernel that cannot be built here; the message says why."""


def _cpu() -> str:
    """What -march=native compiles for: a kernel built on another processor may not run here."""
    try:
        return next(line for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("flags"))
    except (OSError, StopIteration):
        return platform.processor()


def _compile(name: str, openmp: str) -> ctypes.CDLL:
    source = Path(__file__).parent / f"{name}.c"
    compiler = os.environ.get("CC", "cc")
    flags = [*FLAGS, openmp]
    key = hashlib.sha256("\0".join([source.read_text(), compiler, *flags, _cpu()]).encode()).hexdigest()[:16]
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "memn2n" / "kernels"
    path = cache / f"{name.replace('/', '_')}-{key}.so"
    try:
        if not path.exists():
            cache.mkdir(parents=True, exist_ok=True)
            with tempfile.TemporaryDirectory(dir=cache) as scratch:  # built aside, then renamed: atomic
                built = Path(scratch) / path.name
                subprocess.run([compiler, *flags, str(source), "-o", str(built)], check=True, capture_output=True,
                               text=True, timeout=120)
                os.replace(built, path)
        return ctypes.CDLL(str(path))
    except (OSError, subprocess.SubprocessError) as e:
        detail = (getattr(e, "stderr", None) or str(e)).strip().splitlines()
        raise Unavailable(f"{compiler} {openmp}: {detail[0] if detail else type(e).__name__}") from e


def compiled(name: str, threads: bool = True) -> ctypes.CDLL:
    """``memn2n_cli/<name>.c`` (``name``: "qa/kernel", "lm/kernel") compiled, building it on first use: with OpenMP where the compiler
    has it (``threads``), else serial; Unavailable where neither builds."""
    try:
        return _compile(name, THREADED if threads else SERIAL)
    except Unavailable as threaded:
        if not threads:
            raise
        try:
            library = _compile(name, SERIAL)
        except Unavailable as serial:
            raise Unavailable(f"{threaded}; {serial}") from serial
        log.warning("%s built without OpenMP (%s): one thread", name, threaded)
        return library


@functools.cache
def build(name: str, what: str, threads: bool = True) -> ctypes.CDLL | None:
    """`compiled`, once; None where it cannot be built (``what`` names it in the warning)."""
    try:
        return compiled(name, threads)
    except Unavailable as e:
        log.warning("%s could not be built (%s); using the plain PyTorch path, about 15 times slower for question "
                    "answering and 5 for the language model on the CPU: install a C compiler (Debian: apt-get install "
                    "gcc; macOS: xcode-select --install)", what, e)
        return None


def declare(function, argtypes: list, restype=ctypes.c_int) -> None:
    """A kernel function's C signature: scalars as ctypes types, arrays as ctypes pointer types
    (``ctypes.POINTER(ctypes.c_float)``), which `call` checks each tensor against and then passes
    as a bare address (a ctypes pointer object per argument would cost more than a small step)."""
    function.argtypes = [ctypes.c_void_p if issubclass(t, ctypes._Pointer) else t for t in argtypes]
    function.restype = restype
    function.tensor_dtypes = [C_DTYPES[t._type_] if issubclass(t, ctypes._Pointer) else None for t in argtypes]


def call(function, *args, what: str) -> None:
    """Call a function `declare`d, each array a contiguous CPU tensor of its pointer's type (None
    as NULL): ValueError for any other; -1 from the kernel means out of memory."""
    passed = []
    for position, (arg, dtype) in enumerate(zip(args, function.tensor_dtypes), 1):
        if dtype is not None and arg is not None:
            if not (isinstance(arg, Tensor) and arg.dtype == dtype and arg.is_cpu and arg.is_contiguous()):
                got = (f"a {'' if arg.is_contiguous() else 'non-contiguous '}{arg.dtype} tensor on {arg.device}"
                       if isinstance(arg, Tensor) else type(arg).__name__)
                raise ValueError(f"{what}, {function.__name__}: argument {position} must be a contiguous CPU "
                                 f"{dtype} tensor, not {got}")
            arg = arg.data_ptr()
        passed.append(arg)
    try:
        status = function(*passed)
    except ctypes.ArgumentError as e:  # a scalar of the wrong type: "argument 3: TypeError: ..."
        raise ValueError(f"{what}, {function.__name__}: {e}") from None
    if status != 0:
        raise MemoryError(f"{what} ran out of memory")


def check_shape(tensor: Tensor, shape: tuple[int, ...], name: str) -> None:
    """The size the C code reads ``tensor`` at: ValueError where it is not."""
    if tuple(tensor.shape) != tuple(shape):
        raise ValueError(f"{name} must have shape {tuple(shape)}, not {tuple(tensor.shape)}")


def check_range(ids: Tensor, low: int, high: int | None, name: str) -> None:
    """Every entry of ``ids`` in low..high (None: no upper bound), as the C code indexes with them
    unchecked: IndexError where not."""
    if ids.numel() and not (low <= int(ids.min()) and (high is None or int(ids.max()) <= high)):
        raise IndexError(f"{name} must be in {low}..{'' if high is None else high}, "
                         f"not {int(ids.min())}..{int(ids.max())}")
