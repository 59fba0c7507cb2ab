"""Language-model speed: tokens per second of the Section 5.1 training loop and of evaluation.

    python benchmarks/lm_speed.py                                   # 150 units, 7 hops, memory 200
    python benchmarks/lm_speed.py --dim 150 --hops 2 --memory-size 100
    python benchmarks/lm_speed.py --repo /path/to/other/checkout    # time another version
    python benchmarks/lm_speed.py --device cuda

Trains ``--steps`` steps of `fit_lm` on Penn Treebank after ``--warmup`` untimed ones (batch 128,
the recipe's learning rate and clipping), then evaluates ``--eval-tokens`` validation positions,
and prints one JSON line. Data loading and the first steps (the kernel's one-time build, the
allocator's first growth) are not timed. Compare versions by running them in turn, A B A B.
"""

from __future__ import annotations

import argparse
import inspect
import json
import sys
import time
from pathlib import Path

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--dim", type=int, default=150)
parser.add_argument("--hops", type=int, default=7)
parser.add_argument("--memory-size", type=int, default=200)
parser.add_argument("--steps", type=int, default=60)
parser.add_argument("--warmup", type=int, default=5)
parser.add_argument("--eval-tokens", type=int, default=10_240)
parser.add_argument("--device", default="cpu")
parser.add_argument("--data-dir", type=Path, default=Path(__file__).resolve().parents[2] / "shared/data/ptb")
parser.add_argument("--repo", type=Path, default=Path(__file__).resolve().parents[1], help="checkout to time")
args = parser.parse_args()
sys.path.insert(0, str(args.repo))

import torch  # noqa: E402

import memn2n_cli  # noqa: E402
from memn2n_cli.allocator import keep_freed_memory  # noqa: E402
try:  # where the language model's training lives since issue 24
    from memn2n_cli.lm.training import LMState, evaluate_lm, fit_lm
except ImportError:  # a --repo checkout from before memn2n_cli/lm/
    from memn2n_cli.lm_training import LMState, evaluate_lm, fit_lm
from memn2n_cli.model import MemN2NLM  # noqa: E402

try:  # where the configs live now
    from memn2n_cli.configs import LMConfig, LMTrainConfig
except ImportError:  # a --repo checkout from before memn2n_cli/configs.py
    from memn2n_cli.lm_training import LMTrainConfig
    from memn2n_cli.model import LMConfig
from tasks import get_task  # noqa: E402

if not Path(memn2n_cli.__file__).resolve().is_relative_to(args.repo.resolve()):
    sys.exit(f"--repo {args.repo}: memn2n_cli was imported from {memn2n_cli.__file__}, not from there")
keep_freed_memory()  # as the memn2n command does
corpus = get_task("ptb").load(args.data_dir)
corpus.ids = {split: ids.to(args.device) for split, ids in corpus.ids.items()}
torch.manual_seed(0)
model = MemN2NLM(LMConfig(len(corpus.words), dim=args.dim, hops=args.hops, memory_size=args.memory_size,
                          linear_dim=args.dim // 2)).to(args.device)
generator = torch.Generator().manual_seed(0)
state = LMState(lr=0.01)
# The task's metrics are an argument of fit_lm since issue 24; an older --repo computes its own.
metrics = {"metrics": get_task("ptb").metrics} if "metrics" in inspect.signature(fit_lm).parameters else {}


def train(steps: int) -> float:
    started = time.perf_counter()
    fit_lm(model, corpus, LMTrainConfig(max_steps=state.steps + steps), state, generator, lambda state: None, **metrics)
    if args.device.startswith("cuda"):
        torch.cuda.synchronize()
    return time.perf_counter() - started


train(args.warmup)
seconds = train(args.steps)
valid = corpus.ids["valid"][: args.eval_tokens + args.memory_size]
started = time.perf_counter()
counts = evaluate_lm(model, valid)
eval_seconds = time.perf_counter() - started
print(json.dumps({"repo": str(args.repo), "config": f"{args.dim}/{args.hops}/{args.memory_size}",
                  "device": args.device, "threads": torch.get_num_threads(), "steps": args.steps,
                  "tokens_per_second": round(args.steps * 128 / seconds),
                  "eval_tokens_per_second": round(counts["tokens"] / eval_seconds), "torch": torch.__version__}))
