"""How a language model predicts from a prompt shorter than its memory, by how the memory is filled.

    python benchmarks/short_prompts.py RUN [--split test] [--data-dir DIR] [--words 5]

For every sentence of the split (the words after an <eos>) and k = 1 .. --words, the word after
the sentence's first k words is predicted from a memory that holds:

* ``context``: the N words before it in the text (as in training and `eval`: a full memory);
* ``last-words``: the k words after the last N - k words of the training text, which end a
  sentence (what `predict --next` does: config.json's ``data.last_words``);
* ``short``: the k words alone, a memory of k slots (what `predict --next` did before, and does
  for a run written before ``last_words`` was recorded);
* ``eos-once``: the k words after one <eos>, a memory of k + 1 slots;
* ``eos``: the k words after <eos> repeated to fill the N slots;
* ``unk-eos``: the k words after one <eos>, the other slots <unk>.

Prints one JSON line per k and one for all k together: the perplexity of each filling over the
same targets. Only sentences whose start has N words of text before it count, so that ``context``
has a full memory.
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
parser.add_argument("--words", type=int, default=5, help="the longest prompt, in words")
args = parser.parse_args()
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from memn2n_cli.lm.training import contexts, load_lm  # noqa: E402
from tasks import get_task  # noqa: E402
from tasks.lm import EOS  # noqa: E402

model, config, words = load_lm(args.run)
model.eval()
N, eos = model.config.memory_size, words.index(EOS)
corpus = get_task(config["task"]).load(args.data_dir or Path(config["data"]["dir"]))
ids, last_words = corpus.ids[args.split], corpus.ids["train"][-N:].flip(0)  # the training text's last N words, latest first
starts = (torch.nonzero(ids[:-1] == eos).squeeze(1) + 1).tolist()  # the first word of each sentence
unk = words.index("<unk>") if "<unk>" in words else eos
names = ("context", "last-words", "short", "eos-once", "eos", "unk-eos")
totals = {name: [0.0] * (args.words + 1) for name in names}
counts = [0] * (args.words + 1)


def nll(context: torch.Tensor, targets: torch.Tensor) -> float:
    with torch.no_grad():
        return float(F.cross_entropy(model(context).logits, targets, reduction="sum"))


for k in range(1, min(args.words, N - 2) + 1):
    # Sentences of at least k words (the prompt holds no <eos>) with N words of text before the target's memory.
    chosen = [s for s in starts if s >= N and s + k < len(ids) and not bool((ids[s:s + k] == eos).any())]
    if not chosen:
        continue
    last = torch.tensor(chosen) + k - 1  # the prompt's last word: the current word
    targets = ids[last + 1]
    prompts = contexts(ids, last, k)  # (B, k), the current word first
    counts[k] = len(chosen)
    totals["context"][k] = nll(contexts(ids, last, N), targets)
    totals["eos"][k] = nll(torch.cat([prompts, torch.full((len(chosen), N - k), eos)], 1), targets)
    totals["eos-once"][k] = nll(torch.cat([prompts, torch.full((len(chosen), 1), eos)], 1), targets)
    totals["short"][k] = nll(prompts, targets)
    totals["unk-eos"][k] = nll(torch.cat([prompts, torch.full((len(chosen), 1), eos),
                                          torch.full((len(chosen), N - k - 1), unk)], 1), targets)
    totals["last-words"][k] = nll(torch.cat([prompts, last_words[: N - k].expand(len(chosen), -1)], 1), targets)
    print(json.dumps({"words": k, "targets": counts[k],
                      **{name: round(math.exp(t[k] / counts[k]), 2) for name, t in totals.items()}}))
print(json.dumps({"words": f"1-{args.words}", "targets": sum(counts), "run": str(args.run),
                  **{name: round(math.exp(sum(t) / sum(counts)), 2) for name, t in totals.items()}}))
