"""Page faults of training with and without `keep_freed_memory` (memn2n_cli/allocator.py).

    python benchmarks/page_faults.py [--data-dir ../shared/data/babi/v1.2/en]

Trains 10 restarts of bAbI task 3 together on 300 questions for 4 epochs, once with freed memory
kept and once with glibc's defaults, each in a fresh process, and prints the median minor page
faults of epochs 2 to 4 of each (the first epoch maps memory for the first time). Measured
2026-11-21: kept, medians 6 to 1,114; glibc's defaults, 11,483 to 21,096. A measurement, not a
test: now and then an epoch faults in new heap, so it lives here rather than in the unit suite.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TRAINING = """
import resource, sys, torch
from pathlib import Path
from memn2n_cli.allocator import keep_freed_memory
if sys.argv[1] == "keep":
    assert keep_freed_memory()
from memn2n_cli.configs import ModelConfig, TrainConfig
from memn2n_cli.model import MemN2N
from memn2n_cli.qa.restarts import fit_restarts
from memn2n_cli.qa.runs import encode_splits, load_splits
from tasks import get_task
from tasks.qa import Vocabulary
torch.set_num_threads(1)
splits = load_splits(get_task("babi"), Path(sys.argv[2]), [3], 0.1, 0)
splits["train"] = splits["train"][:300]
vocab = Vocabulary.build(splits["all_train"])
data = encode_splits(splits, vocab, 50, "cpu")
config = ModelConfig(vocab_size=len(vocab.words), answer_word_ids=vocab.answer_word_ids(), memory_size=50,
                     sentence_size=data["train"].sentences.shape[1])
models = [MemN2N(config) for _ in range(10)]
faults = []
fit_restarts(models, data["train"], data["valid"], TrainConfig(epochs=4, linear_start=False), list(range(10)),
             lambda restart, record: faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt))
ends = faults[9::10]  # at the end of each epoch (10 restarts report)
print(sorted(b - a for a, b in zip(ends, ends[1:]))[1])  # the median of epochs 2 to 4
"""

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--data-dir", type=Path, default=ROOT.parent / "shared/data/babi/v1.2/en")
args = parser.parse_args()
medians = {mode: int(subprocess.run([sys.executable, "-c", TRAINING, mode, str(args.data_dir)], cwd=ROOT,
                                    capture_output=True, text=True, check=True).stdout)
           for mode in ("keep", "default")}
print(json.dumps({"median_page_faults_kept": medians["keep"], "median_page_faults_glibc_defaults": medians["default"]}))
