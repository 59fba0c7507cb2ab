"""The language model's hops as a compiled CPU kernel: the fast path beside `model.multi_hop`.

`lm_kernel.c` is compiled once per machine with the system's C compiler (``$CC``, else ``cc``)
into ``~/.cache/memn2n/kernels`` and loaded with ctypes; its OpenMP threads are PyTorch's own
(the same ``libgomp``), so ``torch.set_num_threads`` governs both. Where it cannot be built (no
compiler, no OpenMP) the model takes the plain PyTorch path and says so once. The kernel and the
plain path agree to floating-point tolerance (tests/test_lm_kernel.py).
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
SOURCE = Path(__file__).with_name("lm_kernel.c")
FLAGS = ["-O3", "-march=native", "-fopenmp", "-ffp-contract=fast", "-shared", "-fPIC"]


def _cpu() -> str:
    """What -march=native compiles for: a kernel built on another processor may not run here."""
    try:
        return next(line for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("flags"))
    except (OSError, StopIteration):
        return platform.processor()


@functools.cache
def library() -> ctypes.CDLL | None:
    """The compiled kernel, building it on first use; None where it cannot be built."""
    compiler = os.environ.get("CC", "cc")
    key = hashlib.sha256("\0".join([SOURCE.read_text(), compiler, *FLAGS, _cpu()]).encode()).hexdigest()[:16]
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "memn2n" / "kernels"
    path = cache / f"lm_kernel-{key}.so"
    try:
        if not path.exists():
            cache.mkdir(parents=True, exist_ok=True)
            with tempfile.TemporaryDirectory(dir=cache) as scratch:  # built aside, then renamed: atomic
                built = Path(scratch) / path.name
                subprocess.run([compiler, *FLAGS, str(SOURCE), "-o", str(built)], check=True, capture_output=True,
                               text=True, timeout=120)
                os.replace(built, path)
        lib = ctypes.CDLL(str(path))
    except (OSError, subprocess.SubprocessError) as e:
        detail = (getattr(e, "stderr", None) or str(e)).strip().splitlines()
        log.warning("the language model's compiled kernel could not be built (%s); using the plain PyTorch path, "
                    "several times slower on the CPU", detail[0] if detail else type(e).__name__)
        return None
    pointer, i64, i32 = ctypes.c_void_p, ctypes.c_int64, ctypes.c_int
    lib.lm_forward.argtypes = [i64, i32, i32, i32, i32] + [pointer] * 8
    lib.lm_backward.argtypes = [i64, i32, i32, i32, i32] + [pointer] * 11
    lib.lm_embedding_grads.argtypes = [i64, i32, i32, i32, i64] + [pointer] * 7
    for function in (lib.lm_forward, lib.lm_backward, lib.lm_embedding_grads):
        function.restype = i32
    return lib


def usable(context: Tensor, *weights: Tensor) -> bool:
    """Whether the kernel takes these (int64 word ids, float32 weights, on the CPU) and is built."""
    return (context.device.type == "cpu" and context.dtype == torch.int64
            and all(w.device.type == "cpu" and w.dtype == torch.float32 for w in weights) and library() is not None)


def _call(function, *args) -> None:
    pointers = [a.data_ptr() if isinstance(a, Tensor) else a for a in args]
    if function(*pointers) != 0:
        raise MemoryError("the language model's kernel ran out of memory")


class LayerwiseHops(torch.autograd.Function):
    """K hops over one memory (layer-wise tying) with the ReLU past ``linear_dim``: (u^{K+1}, p).

    context (B, N) word ids; query (B, d) u^1, a constant (no gradient); A, C (V, d); T_A, T_C
    (N, d); H (d, d) -> u^{K+1} (B, d) and the attention p (B, K, N), which carries no gradient."""

    @staticmethod
    def forward(ctx, context: Tensor, query: Tensor, A: Tensor, C: Tensor, T_A: Tensor, T_C: Tensor, H: Tensor,
                hops: int, linear_dim: int):
        lib = library()
        context, A, C, T_A, T_C, H = (t.contiguous() for t in (context, A, C, T_A, T_C, H))
        (B, N), d = context.shape, A.shape[1]
        if context.numel() and not 0 <= int(context.min()) <= int(context.max()) < len(A):  # the C code reads rows unchecked
            raise IndexError(f"word ids must be in 0..{len(A) - 1}, not {int(context.min())}..{int(context.max())}")
        if N > len(T_A):
            raise IndexError(f"{N} words in memory, but temporal embeddings for only {len(T_A)}")
        U = torch.empty(B, hops + 1, d, dtype=torch.float32)  # u^1 .. u^{K+1}
        U[:, 0] = query
        P = torch.empty(B, hops, N, dtype=torch.float32)
        _call(lib.lm_forward, B, N, d, hops, linear_dim, context, A, C, T_A, T_C, H, U, P)
        ctx.save_for_backward(context, A, C, T_A, T_C, H, U, P)
        ctx.linear_dim = linear_dim
        ctx.mark_non_differentiable(P)
        return U[:, hops].clone(), P

    @staticmethod
    def backward(ctx, grad: Tensor, _):
        lib = library()
        context, A, C, T_A, T_C, H, U, P = ctx.saved_tensors
        (B, N), d, hops = context.shape, A.shape[1], P.shape[1]
        DS = torch.empty(B, hops, N, dtype=torch.float32)  # ds^k of every hop
        DO = torch.empty(B, hops, d, dtype=torch.float32)  # dv^k of every hop
        _call(lib.lm_backward, B, N, d, hops, ctx.linear_dim, context, A, C, T_A, T_C, H, U, P, grad.contiguous(),
              DS, DO)
        dA, dC = torch.zeros_like(A), torch.zeros_like(C)
        _call(lib.lm_embedding_grads, B, N, d, hops, len(A), context, U, P, DS, DO, dA, dC)
        inputs = U[:, :hops].reshape(-1, d)  # u^1 .. u^K, (B K, d)
        dT_A = DS.reshape(-1, N).T @ inputs  # sum over examples and hops of ds^k_i u^k  (N, d)
        dT_C = P.reshape(-1, N).T @ DO.reshape(-1, d)  # sum of p^k_i dv^k  (N, d)
        dH = DO.reshape(-1, d).T @ inputs  # sum of dv^k (u^k)^T  (d, d)
        return None, None, dA, dC, dT_A, dT_C, dH, None, None
