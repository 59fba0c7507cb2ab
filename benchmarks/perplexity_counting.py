"""A language-model run's perplexity counted our way and the way the authors' code counts it.

    python benchmarks/perplexity_counting.py RUN [--split test] [--data-dir DIR]

Ours: every position whose memory is full, each once (targets: words N+1 .. T, 1-based, of a
split of T words with memory N). The authors' `MemN2N-lang-model/main.lua` (`test()`): ceil(T/128)
batches of 128 consecutive positions from position N+1, wrapping to position N+1 after the
split's end, so word N+1 is never a target and the first words after it are targets twice.
Prints one JSON line with both perplexities and the counts.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("run", type=Path)
parser.add_argument("--split", default="test")
parser.add_argument("--data-dir", type=Path, default=None)
args = parser.parse_args()
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from memn2n_cli.lm.training import contexts, load_lm  # noqa: E402
from tasks import get_task  # noqa: E402

model, config, words = load_lm(args.run)
ids = get_task(config["task"]).load(args.data_dir or Path(config["data"]["dir"])).ids[args.split]
model.eval()
N, T, batch = model.config.memory_size, len(ids), 128
nll = torch.zeros(T, dtype=torch.float64)  # nll[m]: -log p(ids[m + 1]) with memory ids[m], ids[m - 1], ...
with torch.no_grad():
    for positions in torch.arange(N - 1, T - 1).split(512):
        logits = model(contexts(ids, positions, N)).logits
        nll[positions] = F.cross_entropy(logits, ids[positions + 1], reduction="none").double()
ours = nll[N - 1: T - 1]
# main.lua, 1-based: m = memsize + 1; target words[m + 1]; m = m + 1, back to memsize + 1 past T - 1.
# 0-based, the current word's index runs N, N + 1, ..., T - 2, N, N + 1, ... for ceil(T / 128) * 128 targets.
count = math.ceil(T / batch) * batch
theirs = nll[N + torch.arange(count) % (T - 1 - N)]
print(json.dumps({"run": str(args.run), "split": args.split, "words": T, "memory": N,
                  "ours": {"targets": len(ours), "perplexity": math.exp(float(ours.mean()))},
                  "authors": {"targets": count, "distinct": T - 1 - N, "perplexity": math.exp(float(theirs.mean()))}}))
