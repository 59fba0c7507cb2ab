"""Peak memory and time of the validation pass of restarts trained together, on a large held-out set.

    python benchmarks/validation_memory.py                                  # joint en-10k, 5 restarts
    python benchmarks/validation_memory.py --repo /path/to/other/checkout   # the same for another version

Each epoch of `fit_restarts` validates every restart on the held-out 10% of the training set; on
joint 10k data that is 19,000 questions (20,000 with task 3's file). This trains R restarts of the
joint model (d = 50) for one epoch on 64 training questions, so nearly all the time and memory is
one validation pass, and prints one JSON line: the held-out questions, the process's peak resident
memory before and after (MiB), and the seconds of the epoch.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from pathlib import Path

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--data-dir", type=Path,
                    default=Path(__file__).resolve().parents[2] / "shared/data/babi/v1.2/en-10k")
parser.add_argument("--restarts", type=int, default=5, help="restarts together (a sweep's part: 10 in 2 parts)")
parser.add_argument("--repo", type=Path, default=Path(__file__).resolve().parents[1], help="checkout to measure")
args = parser.parse_args()
sys.path.insert(0, str(args.repo))

import torch  # noqa: E402

from memn2n_cli.allocator import keep_freed_memory  # noqa: E402
from memn2n_cli.configs import ModelConfig, TrainConfig  # noqa: E402
from memn2n_cli.model import MemN2N  # noqa: E402
from memn2n_cli.qa.restarts import fit_restarts  # noqa: E402
from memn2n_cli.qa.runs import encode_splits, load_splits  # noqa: E402
from tasks import get_task  # noqa: E402
from tasks.qa import Vocabulary, encode  # noqa: E402


def peak_mib() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024


keep_freed_memory()  # as the memn2n command does
torch.set_num_threads(1)  # as a sweep worker does
tasks = [t for t in range(1, 21) if any(args.data_dir.glob(f"qa{t}_*_train.txt"))]
splits = load_splits(get_task("babi"), args.data_dir, tasks, 0.1, 0)
vocab = Vocabulary.build(splits["all_train"])
data = encode_splits(splits, vocab, 50, "cpu")
config = ModelConfig(vocab_size=len(vocab.words), answer_word_ids=vocab.answer_word_ids(), dim=50, memory_size=50,
                     sentence_size=data["train"].sentences.shape[1])
train = encode(splits["train"][:64], vocab, 50)
before = peak_mib()
models = [MemN2N(config) for _ in range(args.restarts)]
started = time.perf_counter()
fit_restarts(models, train, data["valid"], TrainConfig(epochs=1, linear_start=False), list(range(args.restarts)))
print(json.dumps({"repo": str(args.repo), "valid_questions": len(data["valid"]), "restarts": args.restarts,
                  "peak_mib_before": before, "peak_mib": peak_mib(),
                  "seconds": round(time.perf_counter() - started, 1)}))
