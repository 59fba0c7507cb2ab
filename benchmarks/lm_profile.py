"""Where a training step of the language model spends its time, part by part, on the CPU.

    python benchmarks/lm_profile.py                      # 150 units, 7 hops, memory 200, batch 128
    python benchmarks/lm_profile.py --hops 2 --memory-size 100

Takes the positions of a real training step on Penn Treebank and times, each as the best of
``--reps`` rounds of ``--steps`` calls (the best, because on a shared machine noise only adds):
the whole step as `fit_lm` takes it on the CPU (`lm_kernel.SGDStep`), then each part alone, in
the step's order: the hops kernel's forward, the logits, the loss and its gradient, the gradient
of u, the gradient of W, the hops kernel's backward, its gradients of A and C (rows of the batch's
words), the small products of the backward (T_A, T_C, H), the gradient norm, and the SGD updates
(dense T_A, T_C, H, W; rows of A and C). Prints one JSON line, milliseconds per step.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--dim", type=int, default=150)
parser.add_argument("--hops", type=int, default=7)
parser.add_argument("--memory-size", type=int, default=200)
parser.add_argument("--steps", type=int, default=10)
parser.add_argument("--reps", type=int, default=5)
parser.add_argument("--data-dir", type=Path, default=Path(__file__).resolve().parents[2] / "shared/data/ptb")
args = parser.parse_args()
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from memn2n_cli.lm import kernel as lm_kernel  # noqa: E402
from memn2n_cli.allocator import keep_freed_memory  # noqa: E402
from memn2n_cli.configs import LMConfig  # noqa: E402
from memn2n_cli.lm.training import contexts  # noqa: E402
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


sgd_step = lm_kernel.SGDStep(model)
figures = {"config": f"{d}/{K}/{N}", "threads": torch.get_num_threads(),
           "step": best(lambda: sgd_step(x, target, 0.01, 50.0))}
lib, call = lm_kernel.library(), lm_kernel._call
A, C, T_A, T_C, H, W = (p.detach() for p in (model.A.weight, model.C.weight, model.T_A, model.T_C, model.H.weight,
                                            model.W.weight))
query = torch.full((d,), model.config.query)
figures["hops forward"] = best(lambda: lm_kernel.hops_forward(x, query, A, C, T_A, T_C, H, K, d // 2))
U, P = lm_kernel.hops_forward(x, query, A, C, T_A, T_C, H, K, d // 2)
u, G, dW = U[:, K, :d], torch.empty(B, len(W)), torch.empty_like(W)
figures["logits"] = best(lambda: torch.mm(u, W.T, out=G))
losses = torch.empty(B, dtype=torch.float64)
figures["loss and its gradient"] = best(lambda: call(lib.lm_softmax_loss, B, len(W), G, target, losses))
figures["gradient of u"] = best(lambda: (W.T @ G.T).T)
figures["gradient of W"] = best(lambda: torch.mm(G.T, u, out=dW))
DS, DO, g = torch.empty(B, K, N), torch.empty(B, K, U.shape[2]), torch.randn(B, d)
figures["hops backward"] = best(lambda: call(lib.lm_backward, B, N, d, K, d // 2, x, A, C, T_A, T_C, H, U, P, g, DS, DO))
words, count = torch.empty(min(len(A), B * N), dtype=torch.long), torch.zeros(1, dtype=torch.long)
rows_A, rows_C = torch.empty(len(words), d), torch.empty(len(words), d)
figures["gradients of A and C"] = best(lambda: call(lib.lm_embedding_grads, B, N, d, K, len(A), x, U, P, DS, DO, words,
                                                    rows_A, rows_C, count))
inputs, dv = U[:, :K, :d].reshape(-1, d), DO[..., :d].reshape(-1, d)
figures["gradients of T_A, T_C, H"] = best(lambda: (DS.reshape(-1, N).T @ inputs, P.reshape(-1, N).T @ dv, dv.T @ inputs))
words, dA, dC, dT_A, dT_C, dH = lm_kernel.hops_backward(x, A, C, T_A, T_C, H, U, P, g, d // 2)
grads = [dA, dC, dT_A, dT_C, dH, dW]
figures["gradient norm"] = best(lambda: torch.linalg.vector_norm(torch.stack(torch._foreach_norm(grads))))
figures["update of T_A, T_C, H, W"] = best(lambda: [w.add_(g, alpha=0.0) for w, g in ((T_A, dT_A), (T_C, dT_C), (H, dH),
                                                                                        (W, dW))])
figures["update of A's and C's rows"] = best(lambda: [call(lib.lm_add_rows, len(words), d, words, rows, 0.0, table)
                                                       for table, rows in ((A, dA), (C, dC))])
parts = sum(v for k, v in figures.items() if k not in ("config", "threads", "step"))
figures["sum of the parts"] = round(parts, 2)
print(json.dumps(figures))
