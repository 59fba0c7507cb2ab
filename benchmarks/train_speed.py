"""Training speed: examples per second of the bAbI training loop (Sec. 4.2 recipe) on this machine.

    python benchmarks/train_speed.py --task 3 --epochs 5            # one model, one task
    python benchmarks/train_speed.py --task 3 --restarts 10         # and 10 restarts trained together
    python benchmarks/train_speed.py --joint --epochs 2             # the joint model (d = 50)
    python benchmarks/train_speed.py --repo /path/to/other/checkout # time another version
    python benchmarks/train_speed.py --glibc-defaults               # without keep_freed_memory

Prints one JSON line: examples per second of one model and, with --restarts R, of R restarts
trained together (counting every restart's examples), and their ratio, measured in the same run.
Data loading is not timed; each epoch's validation pass is, as in training.
"""

from __future__ import annotations

import argparse
import inspect
import json
import sys
import time
from pathlib import Path

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--task", type=int, default=3)
parser.add_argument("--joint", action="store_true", help="all 20 tasks, one model, d = 50")
parser.add_argument("--epochs", type=int, default=5)
parser.add_argument("--threads", type=int, default=0, help="torch threads; 0 = torch's default")
parser.add_argument("--restarts", type=int, default=0, help="also time this many restarts trained together")
parser.add_argument("--data-dir", type=Path, default=Path(__file__).resolve().parents[2] / "shared/data/babi/v1.2/en")
parser.add_argument("--glibc-defaults", action="store_true", help="leave malloc's thresholds as glibc sets them")
parser.add_argument("--repo", type=Path, default=Path(__file__).resolve().parents[1], help="checkout to time")
args = parser.parse_args()
sys.path.insert(0, str(args.repo))

import torch  # noqa: E402

from memn2n_cli.allocator import keep_freed_memory  # noqa: E402
from memn2n_cli.model import MemN2N  # noqa: E402
try:  # where question answering lives since issue 24
    from memn2n_cli.qa.runs import encode_splits, load_splits
    from memn2n_cli.qa.training import fit
except ImportError:  # a --repo checkout from before memn2n_cli/qa/
    from memn2n_cli.runs import encode_splits, load_splits
    from memn2n_cli.training import fit
from tasks import get_task  # noqa: E402

try:  # where the configs and the question-answering data live now
    from memn2n_cli.configs import ModelConfig, TrainConfig
    from tasks.qa import Vocabulary
except ImportError:  # a --repo checkout from before memn2n_cli/configs.py
    from memn2n_cli.model import ModelConfig
    from memn2n_cli.training import TrainConfig
    from tasks.babi import Vocabulary

if not args.glibc_defaults:
    keep_freed_memory()  # as the memn2n command does
if args.threads:
    torch.set_num_threads(args.threads)
tasks = list(range(1, 21)) if args.joint else [args.task]
task = [get_task("babi")] if "task" in inspect.signature(load_splits).parameters else []  # since tasks/qa.py
splits = load_splits(*task, args.data_dir, tasks, 0.1, 0)
vocab = Vocabulary.build(splits["all_train"])
memory = min(50, max(len(q.story) for q in splits["all_train"]))
data = encode_splits(splits, vocab, memory, "cpu")
config = ModelConfig(vocab_size=len(vocab.words), answer_word_ids=vocab.answer_word_ids(), dim=50 if args.joint else 20, memory_size=memory,
                     sentence_size=data["train"].sentences.shape[1])
recipe = TrainConfig(epochs=args.epochs, ls_epochs=1)


def timed(train) -> dict:
    started = time.perf_counter()
    epochs = train()
    seconds = time.perf_counter() - started
    return {"examples": epochs * len(data["train"]), "seconds": round(seconds, 2),
            "examples_per_second": round(epochs * len(data["train"]) / seconds)}


torch.manual_seed(0)
one = timed(lambda: len(fit(MemN2N(config), data["train"], data["valid"], recipe)))
report = {"repo": str(args.repo), "glibc_defaults": args.glibc_defaults,
          "tasks": "joint" if args.joint else args.task, "epochs": args.epochs + 1,
          "one_model": one, "threads": torch.get_num_threads(), "torch": torch.__version__}
if args.restarts:
    try:
        from memn2n_cli.qa.restarts import fit_restarts
    except ImportError:  # before memn2n_cli/qa/
        from memn2n_cli.restarts import fit_restarts

    seeds = list(range(args.restarts))
    models = [MemN2N(config) for _ in seeds]
    together = timed(lambda: sum(map(len, fit_restarts(models, data["train"], data["valid"], recipe, seeds))))
    report.update(restarts=args.restarts, restarts_together=together,
                  ratio=round(together["examples_per_second"] / one["examples_per_second"], 2))
print(json.dumps(report))
