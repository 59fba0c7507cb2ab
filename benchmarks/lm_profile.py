"""Where a training step of the language model spends its time, part by part, on the CPU.

    python benchmarks/lm_profile.py                      # 150 units, 7 hops, memory 200, batch 128
    python benchmarks/lm_profile.py --hops 2 --memory-size 100

Takes the positions of real training steps on Penn Treebank and times, each as the best of
``--reps`` rounds of ``--steps`` calls (the best, because on a shared machine noise only adds):
the whole step as `fit_lm` takes it (forward, backward, gradient clipping, SGD), then each part
alone: the hops kernel's forward, its backward, its gradients of A and C, the small products of
the backward (T_A, T_C, H), the output layer's three products (logits, the gradients of u and W),
the log-softmax and loss forward and backward, and the optimiser's passes (zeroing, norm, clip,
update). Prints one JSON line, milliseconds per step.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--dim", type=int, default=150)
parser.add_argument("--hops", type=int, default=7)
parser.add_argument("--memory-size", type=int, default=200)
parser.add_argument("--steps", type=int, default=10)
parser.add_argument("--reps", type=int, default=5)
parser.add_argument("--data-dir", type=Path, default=Path(__file__).resolve().parents[2] / "shared/data/ptb")
args = parser.parse_args()
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from memn2n_cli import lm_kernel  # noqa: E402
from memn2n_cli.allocator import keep_freed_memory  # noqa: E402
from memn2n_cli.configs import LMConfig  # noqa: E402
from memn2n_cli.lm_training import contexts  # noqa: E402
from memn2n_cli.model import MemN2NLM  # noqa: E402
from tasks import get_task  # noqa: E402

if lm_kernel.library() is None:
    sys.exit("the kernel could not be built: this profiles the CPU kernel's path")
keep_freed_memory()  # as the memn2n command does
corpus = get_task("ptb").load(args.data_dir)
ids = corpus.ids["train"]
torch.manual_seed(0)
B, N, d, K = 128, args.memory_size, args.dim, args.hops
model = MemN2NLM(LMConfig(len(corpus.words), dim=d, hops=K, memory_size=N, linear_dim=d // 2))
optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
generator = torch.Generator().manual_seed(0)
positions = torch.randint(N - 1, len(ids) - 1, (B,), generator=generator)
x, target = contexts(ids, positions, N), ids[positions + 1]


def best(function) -> float:
    """Milliseconds per call: the best of ``reps`` rounds of ``steps`` calls, after two untimed."""
    function(), function()
    rounds = []
    for _ in range(args.reps):
        started = time.perf_counter()
        for _ in range(args.steps):
            function()
        rounds.append((time.perf_counter() - started) / args.steps * 1000)
    return round(min(rounds), 2)


def step() -> None:  # fit_lm's step
    out = model(x, target)
    optimizer.zero_grad(set_to_none=True)
    out.loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 50.0)
    optimizer.step()


figures = {"config": f"{d}/{K}/{N}", "threads": torch.get_num_threads(), "step": best(step)}
lib, call = lm_kernel.library(), lm_kernel._call
A, C, T_A, T_C, H, W = (p.detach() for p in (model.A.weight, model.C.weight, model.T_A, model.T_C, model.H.weight,
                                            model.W.weight))
U = torch.empty(B, K + 1, d)
U[:, 0] = model.config.query
P, DS, DO, g = torch.empty(B, K, N), torch.empty(B, K, N), torch.empty(B, K, d), torch.randn(B, d)
figures["hops forward"] = best(lambda: call(lib.lm_forward, B, N, d, K, d // 2, x, A, C, T_A, T_C, H, U, P))
figures["hops backward"] = best(lambda: call(lib.lm_backward, B, N, d, K, d // 2, x, A, C, T_A, T_C, H, U, P, g, DS, DO))
dA, dC = torch.zeros_like(A), torch.zeros_like(C)
figures["gradients of A and C"] = best(lambda: call(lib.lm_embedding_grads, B, N, d, K, len(A), x, U, P, DS, DO, dA, dC))
inputs = U[:, :K].reshape(-1, d)
figures["gradients of T_A, T_C, H"] = best(lambda: (DS.reshape(-1, N).T @ inputs, P.reshape(-1, N).T @ DO.reshape(-1, d),
                                                    DO.reshape(-1, d).T @ inputs))
u = U[:, K].contiguous()
logits = u @ W.T
G = torch.softmax(logits, -1)
figures["output layer: logits"] = best(lambda: u @ W.T)
figures["output layer: gradient of u"] = best(lambda: G @ W)
figures["output layer: gradient of W"] = best(lambda: G.T @ u)
leaf = logits.clone().requires_grad_()
figures["log-softmax and loss, both ways"] = best(lambda: F.cross_entropy(leaf, target, reduction="sum").backward())
step()
grads = [p.grad for p in model.parameters()]
figures["zeroing A's and C's gradients"] = best(lambda: (torch.zeros_like(A), torch.zeros_like(C)))
figures["gradient norm"] = best(lambda: torch.linalg.vector_norm(torch.stack(torch._foreach_norm(grads))))
figures["clip (scale the gradients)"] = best(lambda: torch._foreach_mul_(grads, 1.0))
figures["SGD update"] = best(lambda: torch._foreach_add_([p.detach() for p in model.parameters()], grads, alpha=0.0))
parts = sum(v for k, v in figures.items() if k not in ("config", "threads", "step"))
figures["sum of the parts"] = round(parts, 2)
print(json.dumps(figures))
