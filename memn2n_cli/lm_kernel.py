"""The language model's hops as a compiled CPU kernel: the fast path beside `model.multi_hop`.

`lm_kernel.c`, built and loaded by `kernels.build`; where it cannot be built the model takes the
plain PyTorch path and says so once. The kernel and the plain path agree to floating-point
tolerance (tests/test_lm_kernel.py).
"""

from __future__ import annotations

import ctypes
import functools

import torch
from torch import Tensor

from memn2n_cli import kernels

WHAT = "the language model's compiled kernel"


@functools.cache
def library() -> ctypes.CDLL | None:
    """The compiled kernel, building it on first use; None where it cannot be built."""
    lib = kernels.build("lm_kernel", WHAT)
    if lib is None:
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
    kernels.call(function, *args, what=WHAT)


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
