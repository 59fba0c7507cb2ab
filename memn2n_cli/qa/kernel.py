"""The question-answering model's training step as a compiled CPU kernel: the fast engine of `restarts.fit_restarts`.

`kernel.c` beside this file (built and loaded by `kernels.build`) computes, for R restarts of one recipe and a
batch of examples each, the summed loss, the logits and every parameter's gradient in one call,
a restart per thread. A step of 10 restarts of a 1k task is a few hundred thousand multiply-adds:
PyTorch spends far longer dispatching the hundreds of small operations of the vmapped model than
computing them, and the kernel does not dispatch at all. `KernelStep` is its engine, called as
its plain twin `restarts.VmappedStep` is, the model itself under vmap, which runs where the kernel
does not (a GPU, no C compiler); the two agree to floating-point tolerance (tests/test_engines.py,
tests/test_qa_kernel.py).
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
def library(threads: bool = True) -> ctypes.CDLL | None:
    """The compiled kernel, building it on first use (``threads``: with OpenMP where the compiler
    has it, else serial); None where it cannot be built."""
    lib = kernels.build("qa/kernel", WHAT, threads)
    if lib is not None:
        i64, i32, f32, f64 = (ctypes.POINTER(t) for t in (ctypes.c_int64, ctypes.c_int32, ctypes.c_float,
                                                          ctypes.c_double))
        # dims linear sentences pos_a pos_b pos_g story time size query answer answer_ids, X T Q H W, loss
        # logits, dX dT dQ dH dW: as kernel.c's qa_step
        kernels.declare(lib.qa_step, [i64, i32, i64, f32, f32, f32, *[i64] * 6, *[f32] * 5, f64, f32, *[f32] * 5])
    return lib


def usable(device: torch.device) -> bool:
    return device.type == "cpu" and library() is not None


class KernelStep:
    """R restarts' step on the examples of ``data`` in the compiled kernel:
    ``step(params, linear, index, time=None, backward=True)`` -> the summed loss (R,) float64, the
    logits (R, B, answers) and, with ``backward``, the gradients of ``params`` (stacked as
    `torch.func.stack_module_state` stacks them; None without). ``index`` (R, B) each restart's
    examples, or (B,) the same for all; ``time`` (R, N, M) each restart's temporal index of every
    example's slots (None: the slot). What the C code reads unchecked is checked here: ``data``
    once, each call's weights, examples and time indices before the call."""

    def __init__(self, config: ModelConfig, answer_word_ids: Tensor, data: Encoded, threads: bool = True):
        self.library = library(threads)
        if self.library is None:
            raise RuntimeError(f"{WHAT} could not be built")
        self.config, self.answer_word_ids, self.data = config, answer_word_ids, data
        S, J = data.sentences.shape
        kernels.check_range(data.sentences, 0, config.vocab_size - 1, "word ids")
        kernels.check_range(torch.cat([data.memory.flatten(), data.query]), 0, S - 1, "sentence rows")
        kernels.check_range(data.answer, -1, len(answer_word_ids) - 1, "answers (-1: never seen in training)")
        kernels.check_range(answer_word_ids, 0, config.vocab_size - 1, "answer word ids")
        kernels.check_shape(answer_word_ids, (len(config.answer_word_ids),), "answer word ids")
        self.positions = self.coefficients()

    def coefficients(self) -> tuple[Tensor, Tensor, Tensor]:
        """Position encoding's l_kj = a_j + g_k b_j for every sentence-table row: a, b (S, J) and
        g (d,), from the model's own `position_encoding`; bag of words is a = 1, b = g = 0."""
        sentences, config = self.data.sentences, self.config
        if config.encoding == "bow":
            return torch.ones(sentences.shape), torch.zeros(sentences.shape), torch.zeros(config.dim)
        a, b, g = position_encoding(sentences, config.dim, config.pe_formula, config.sentence_size)
        return a.contiguous(), b.contiguous(), g.contiguous()

    def __call__(self, params: dict[str, Tensor], linear: Tensor, index: Tensor, time: Tensor | None = None,
                 backward: bool = True) -> tuple[Tensor, Tensor, dict[str, Tensor] | None]:
        config, data = self.config, self.data
        R = len(linear)
        if index.dim() == 1:
            index = index.expand(R, -1)
        B, M = index.shape[1], data.memory.shape[1]
        X, T = params["embedding"], params.get("temporal")
        adjacent = config.tying == "adjacent"
        E, V, d, A, TT = config.hops + 1 if adjacent else 2, config.vocab_size, config.dim, len(self.answer_word_ids), 0
        kernels.check_shape(X, (R, E, V, d), "the embeddings")
        if T is not None:
            TT = T.shape[2]
            kernels.check_shape(T, (R, E, TT, d), "the temporal embeddings")
        layerwise = [None] * 3 if adjacent else [params[name] for name in ("query_embedding", "H.weight", "W")]
        if not adjacent:
            for p, shape, name in zip(layerwise, ((R, V, d), (R, d, d), (R, A, d)), ("B", "H", "W")):
                kernels.check_shape(p, shape, name)
        kernels.check_range(index, 0, len(data) - 1, "example indices")
        if time is None:
            time = torch.arange(M).expand(R, B, M)
        else:
            time = time[torch.arange(R).unsqueeze(1), index]  # restart r's time indices of its examples
            kernels.check_range(time, 0, None, "time indices")  # those past the last temporal embedding use it
        kernels.check_shape(time, (R, B, M), "time indices")
        dims = torch.tensor([R, B, M, data.sentences.shape[1], d, V, E, config.hops, A, TT, config.memory_size,
                             adjacent, config.relu, config.empty_memories == "zero", len(data.sentences)],
                            dtype=torch.int64)
        loss = torch.empty(R, dtype=torch.float64)
        logits = torch.empty(R, B, A)
        grads = {name: torch.zeros_like(value) for name, value in params.items()} if backward else {}
        kernels.call(self.library.qa_step, dims, linear.to(torch.int32).contiguous(), data.sentences,
                     *self.positions, data.memory[index].contiguous(), time.contiguous(),
                     data.memory_size[index].contiguous(), data.query[index].contiguous(),
                     data.answer[index].contiguous(), self.answer_word_ids, X.detach(),
                     None if T is None else T.detach(), *(None if p is None else p.detach() for p in layerwise),
                     loss, logits, *(grads.get(name) for name in ("embedding", "temporal", "query_embedding",
                                                                  "H.weight", "W")),
                     what=WHAT)
        return loss, logits, grads if backward else None
