"""The language model's hops as a compiled CPU kernel: the fast path beside `model.multi_hop`.

`kernel.c` beside this file, built and loaded by `kernels.build`; where it cannot be built the model takes the
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
def library(threads: bool = True) -> ctypes.CDLL | None:
    """The compiled kernel, building it on first use (``threads``: with OpenMP where the compiler
    has it, else serial); None where it cannot be built."""
    lib = kernels.build("lm/kernel", WHAT, threads)
    if lib is None:
        return None
    i64, i32 = ctypes.c_int64, ctypes.c_int
    ids, floats, doubles = (ctypes.POINTER(t) for t in (ctypes.c_int64, ctypes.c_float, ctypes.c_double))
    kernels.declare(lib.lm_forward, [i64, i32, i32, i32, i32, ids] + [floats] * 7)
    kernels.declare(lib.lm_backward, [i64, i32, i32, i32, i32, ids] + [floats] * 10)
    kernels.declare(lib.lm_embedding_grads, [i64, i32, i32, i32, i64, ids] + [floats] * 4 + [ids, floats, floats, ids])
    kernels.declare(lib.lm_softmax_loss, [i64, i64, floats, ids, doubles])
    kernels.declare(lib.lm_add_rows, [i64, i32, ids, floats, ctypes.c_float, floats])
    kernels.declare(lib.lm_row_floats, [i32], i64)
    return lib


def usable(context: Tensor, *weights: Tensor) -> bool:
    """Whether the kernel takes these (int64 word ids, float32 weights, on the CPU) and is built."""
    return (context.device.type == "cpu" and context.dtype == torch.int64
            and all(w.device.type == "cpu" and w.dtype == torch.float32 for w in weights) and library() is not None)


def _call(function, *args) -> None:
    kernels.call(function, *args, what=WHAT)


def hops_forward(context: Tensor, query: Tensor, A: Tensor, C: Tensor, T_A: Tensor, T_C: Tensor, H: Tensor,
                 hops: int, linear_dim: int) -> tuple[Tensor, Tensor]:
    """U (B, K+1, dp): u^1 (the query) .. u^{K+1}, rows padded with zeros to the kernel's dp floats;
    P (B, K, N): each hop's attention. Weights contiguous."""
    (B, N), (V, d) = context.shape, A.shape
    kernels.check_range(context, 0, V - 1, "word ids")  # the C code reads rows unchecked
    if N > len(T_A):
        raise IndexError(f"{N} words in memory, but temporal embeddings for only {len(T_A)}")
    for weight, shape, name in ((C, (V, d), "C"), (T_A, (N, d), "T_A"), (T_C, (N, d), "T_C"), (H, (d, d), "H")):
        kernels.check_shape(weight, shape, name)
    U = torch.zeros(B, hops + 1, library().lm_row_floats(d), dtype=torch.float32)
    U[:, 0, :d] = query
    P = torch.empty(B, hops, N, dtype=torch.float32)
    _call(library().lm_forward, B, N, d, hops, linear_dim, context, A, C, T_A, T_C, H, U, P)
    return U, P


def hops_backward(context: Tensor, A: Tensor, C: Tensor, T_A: Tensor, T_C: Tensor, H: Tensor, U: Tensor, P: Tensor,
                  grad: Tensor, linear_dim: int) -> tuple[Tensor, ...]:
    """From g = dLoss/du^{K+1} (B, d): (words, dA, dC, dT_A, dT_C, dH), the gradients of A and C as
    rows of the distinct words of the batch, ``words`` ascending."""
    lib = library()
    (B, N), d, hops = context.shape, A.shape[1], P.shape[1]
    DS = torch.empty(B, hops, N, dtype=torch.float32)  # ds^k of every hop
    DO = torch.empty(B, hops, U.shape[2], dtype=torch.float32)  # dv^k of every hop, rows as U's
    _call(lib.lm_backward, B, N, d, hops, linear_dim, context, A, C, T_A, T_C, H, U, P, grad.contiguous(), DS, DO)
    room = min(len(A), B * N)
    words, count = torch.empty(room, dtype=torch.int64), torch.zeros(1, dtype=torch.int64)
    dA, dC = torch.empty(room, d, dtype=torch.float32), torch.empty(room, d, dtype=torch.float32)
    _call(lib.lm_embedding_grads, B, N, d, hops, len(A), context, U, P, DS, DO, words, dA, dC, count)
    n = int(count)
    inputs, DO = U[:, :hops, :d].reshape(-1, d), DO[..., :d].reshape(-1, d)  # u^1 .. u^K and dv^1 .. dv^K, (B K, d)
    dT_A = DS.reshape(-1, N).T @ inputs  # sum over examples and hops of ds^k_i u^k  (N, d)
    dT_C = P.reshape(-1, N).T @ DO  # sum of p^k_i dv^k  (N, d)
    dH = DO.T @ inputs  # sum of dv^k (u^k)^T  (d, d)
    return words[:n], dA[:n], dC[:n], dT_A, dT_C, dH


class LayerwiseHops(torch.autograd.Function):
    """K hops over one memory (layer-wise tying) with the ReLU past ``linear_dim``: (u^{K+1}, p).

    context (B, N) word ids; query (B, d) u^1, a constant (no gradient); A, C (V, d); T_A, T_C
    (N, d); H (d, d) -> u^{K+1} (B, d) and the attention p (B, K, N), which carries no gradient."""

    @staticmethod
    def forward(ctx, context: Tensor, query: Tensor, A: Tensor, C: Tensor, T_A: Tensor, T_C: Tensor, H: Tensor,
                hops: int, linear_dim: int):
        context, A, C, T_A, T_C, H = (t.contiguous() for t in (context, A, C, T_A, T_C, H))
        U, P = hops_forward(context, query, A, C, T_A, T_C, H, hops, linear_dim)
        ctx.save_for_backward(context, A, C, T_A, T_C, H, U, P)
        ctx.linear_dim = linear_dim
        ctx.mark_non_differentiable(P)
        return U[:, hops, :A.shape[1]].clone(), P

    @staticmethod
    def backward(ctx, grad: Tensor, _):
        context, A, C, T_A, T_C, H, U, P = ctx.saved_tensors
        words, rows_A, rows_C, dT_A, dT_C, dH = hops_backward(context, A, C, T_A, T_C, H, U, P, grad, ctx.linear_dim)
        dA = torch.zeros_like(A).index_copy_(0, words, rows_A)
        dC = torch.zeros_like(C).index_copy_(0, words, rows_C)
        return None, None, dA, dC, dT_A, dT_C, dH, None, None


class SGDStep:
    """One step of the Sec. 5.1 recipe on a `MemN2NLM`: the summed cross-entropy of predicting
    ``target`` from ``context``, its gradients, rescaled to L2 norm ``max_norm`` when above it, and
    SGD at ``lr``; returns the loss (float64). What autograd, `clip_grad_norm_` and SGD compute on
    the model (tests/test_lm_kernel.py), in one pass and without the dense gradients of A and C:
    only the rows of the batch's words change. The logits and W's gradient are written into the
    same arrays each step, memory already mapped and in the cache (W's gradient: ~2.8 ms, against
    3.5-4 ms into a new array)."""

    def __init__(self, model):
        self.model = model
        self.logits = self.dW = torch.empty(0)

    @torch.no_grad()
    def __call__(self, context: Tensor, target: Tensor, lr: float, max_norm: float) -> Tensor:
        c = self.model.config
        if not (usable(context, *self.model.parameters()) and usable(target) and target.shape == context.shape[:1]):
            raise ValueError("the fused step takes int64 word ids (B, N) and targets (B,) and a float32 model, "
                             "all on the CPU")
        context, target, N = context.contiguous(), target.contiguous(), context.shape[1]
        A, C, T_A, T_C, H, W = (t.data for t in (self.model.A.weight, self.model.C.weight, self.model.T_A[:N],
                                                  self.model.T_C[:N], self.model.H.weight, self.model.W.weight))
        U, P = hops_forward(context, torch.full((c.dim,), c.query), A, C, T_A, T_C, H, c.hops, c.linear_dim)
        u = U[:, c.hops, :c.dim]  # u^{K+1}  (B, d)
        if self.logits.shape != (len(u), len(W)):
            self.logits, self.dW = torch.empty(len(u), len(W)), torch.empty_like(W)
        G = torch.mm(u, W.T, out=self.logits)  # logits, then in their place dLoss/dlogits  (B, V)
        kernels.check_range(target, 0, len(W) - 1, "target word ids")  # the C code writes there unchecked
        losses = torch.empty(len(G), dtype=torch.float64)
        _call(library().lm_softmax_loss, len(G), G.shape[1], G, target, losses)
        du = (W.T @ G.T).T  # G W, formed as its transpose: 2.2-2.5 against 2.7-2.8 ms here (MKL)
        dW = torch.mm(G.T, u, out=self.dW)
        norm_W = torch.linalg.vector_norm(dW)  # while dW is in the cache
        words, dA, dC, dT_A, dT_C, dH = hops_backward(context, A, C, T_A, T_C, H, U, P, du, c.linear_dim)
        norm = float(torch.linalg.vector_norm(torch.stack([*torch._foreach_norm([dA, dC, dT_A, dT_C, dH]), norm_W])))
        coefficient = max_norm / (norm + 1e-6)  # as clip_grad_norm_ rescales: by at most 1, NaN kept
        step = -lr * (1.0 if coefficient >= 1.0 else coefficient)
        for weight, grad in ((T_A, dT_A), (T_C, dT_C), (H, dH), (W, dW)):
            weight.add_(grad, alpha=step)
        for table, rows in ((A, dA), (C, dC)):
            _call(library().lm_add_rows, len(words), table.shape[1], words, rows, step, table)
        return losses.sum()
