"""The question-answering model's training step as a compiled CPU kernel: the fast path of `restarts.fit_restarts`.

`qa_kernel.c` (built and loaded by `kernels.build`) computes, for R restarts of one recipe and a
batch of examples each, the summed loss, the logits and every parameter's gradient in one call,
a restart per thread. A step of 10 restarts of a 1k task is a few hundred thousand multiply-adds:
PyTorch spends far longer dispatching the hundreds of small operations of the vmapped model than
computing them, and the kernel does not dispatch at all. Where it cannot be built, training takes
the vmapped PyTorch path; the two agree to floating-point tolerance (tests/test_qa_kernel.py).
"""

from __future__ import annotations

import ctypes
import functools

import torch
from torch import Tensor

from memn2n_cli import kernels
from memn2n_cli.configs import ModelConfig
from memn2n_cli.model import position_encoding
from tasks.qa import Encoded

WHAT = "the question-answering model's compiled kernel"


@functools.cache
def library() -> ctypes.CDLL | None:
    """The compiled kernel, building it on first use; None where it cannot be built."""
    lib = kernels.build("qa_kernel", WHAT)
    if lib is not None:
        lib.qa_step.argtypes = [ctypes.c_void_p] * 24
        lib.qa_step.restype = ctypes.c_int
    return lib


def usable(device: torch.device) -> bool:
    return device.type == "cpu" and library() is not None


def coefficients(data: Encoded, config: ModelConfig) -> tuple[Tensor, Tensor, Tensor]:
    """Position encoding's l_kj = a_j + g_k b_j for every sentence-table row of ``data``: a, b (S, J)
    and g (d,), from the model's own `position_encoding`; bag of words is a = 1, b = g = 0."""
    # The C code reads rows unchecked: every word id and sentence row must be in range.
    if int(data.sentences.max()) >= config.vocab_size or int(data.sentences.min()) < 0:
        raise IndexError(f"word ids must be in 0..{config.vocab_size - 1}")
    rows = torch.cat([data.memory.flatten(), data.query])
    if len(rows) and (int(rows.max()) >= len(data.sentences) or int(rows.min()) < 0):
        raise IndexError(f"sentence rows must be in 0..{len(data.sentences) - 1}")
    if config.encoding == "bow":
        return (torch.ones(data.sentences.shape), torch.zeros(data.sentences.shape), torch.zeros(config.dim))
    a, b, g = position_encoding(data.sentences, config.dim, config.pe_formula, config.sentence_size)
    return a.contiguous(), b.contiguous(), g.contiguous()


def step(params: dict[str, Tensor], config: ModelConfig, answer_word_ids: Tensor, data: Encoded,
         positions: tuple[Tensor, Tensor, Tensor], index: Tensor, time: Tensor | None, linear: Tensor,
         backward: bool = True) -> tuple[Tensor, Tensor, dict[str, Tensor] | None]:
    """R restarts' loss (R,) float64, logits (R, B, answers) and, with ``backward``, the gradients
    of ``params`` (stacked as `torch.func.stack_module_state` stacks them), on the examples
    ``index`` (R, B) of ``data``; ``time`` (R, B, M) each slot's temporal index (None: the slot)."""
    R, B = index.shape
    M = data.memory.shape[1]
    X, T = params["embedding"], params.get("temporal")
    adjacent = config.tying == "adjacent"
    E, V, d = X.shape[1:]
    A = len(answer_word_ids)
    story = data.memory[index].contiguous()
    if time is None:
        time = torch.arange(M).expand(R, B, M)
    time = time.contiguous()
    dims = torch.tensor([R, B, M, data.sentences.shape[1], d, V, E, config.hops, A, 0 if T is None else T.shape[2],
                         config.memory_size, adjacent, config.relu, config.empty_memories == "zero", len(data.sentences)],
                        dtype=torch.int64)
    loss = torch.empty(R, dtype=torch.float64)
    logits = torch.empty(R, B, A)
    grads = {name: torch.zeros_like(value) for name, value in params.items()} if backward else {}
    layerwise = [params[name] if not adjacent else None for name in ("query_embedding", "H.weight", "W")]
    kernels.call(library().qa_step, dims, linear.to(torch.int32).contiguous(), data.sentences, *positions, story,
                 time, data.memory_size[index].contiguous(), data.query[index].contiguous(),
                 data.answer[index].contiguous(), answer_word_ids, X.detach(), None if T is None else T.detach(),
                 *(None if p is None else p.detach() for p in layerwise), loss, logits,
                 *(grads.get(name) for name in ("embedding", "temporal", "query_embedding", "H.weight", "W")),
                 what=WHAT)
    return loss, logits, grads if backward else None
