"""Generated bAbI against upstream, per task: vocabulary overlap and the distribution of story lengths.

    python benchmarks/generated_vs_upstream.py --generated DIR --upstream ../shared/data/babi/v1.2/en

Reads the training files of both folders with the bAbI plugin's reader and prints a Markdown table:
the words of each (statements, questions and answers), the share of upstream's words the generated
file uses and the generated words upstream never uses, and the statements per story (mean,
median, 90th percentile, max) before each question, as the model's memory sees them.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tasks import babi  # noqa: E402

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--generated", type=Path, required=True)
parser.add_argument("--upstream", type=Path, default=Path(__file__).resolve().parents[2] / "shared/data/babi/v1.2/en")
args = parser.parse_args()


def profile(folder: Path, task: int) -> tuple[set[str], list[int]]:
    questions = babi.read_file(babi.task_file(folder, task, "train"), task)
    words = {w for q in questions for s in q.story + (q.question,) for w in s} | {q.answer for q in questions}
    return words, [len(q.story) for q in questions]


def lengths(sizes: list[int]) -> str:
    deciles = statistics.quantiles(sizes, n=10)
    return f"{statistics.mean(sizes):.1f} / {statistics.median(sizes):g} / {deciles[-1]:g} / {max(sizes)}"


print("| task | words (upstream / generated) | upstream words used | generated-only words "
      "| statements before a question, upstream (mean / median / p90 / max) | generated |")
print("| ---: | ---: | ---: | --- | ---: | ---: |")
for task in babi.TASK_IDS:
    real_words, real_sizes = profile(args.upstream, task)
    made_words, made_sizes = profile(args.generated, task)
    extra = ", ".join(sorted(made_words - real_words)) or "none"
    print(f"| {task} | {len(real_words)} / {len(made_words)} | {100 * len(made_words & real_words) / len(real_words):.0f}% "
          f"| {extra} | {lengths(real_sizes)} | {lengths(made_sizes)} |")
