"""Generated bAbI against upstream, per task: vocabulary overlap, story lengths, and test error.

    python benchmarks/generated_vs_upstream.py --generated DIR --upstream ../shared/data/babi/v1.2/en
    python benchmarks/generated_vs_upstream.py --sweeps REAL_SWEEP GENERATED_SWEEP

With --generated: reads the training files of both folders with the bAbI plugin's reader and
prints a Markdown table: the words of each (statements, questions and answers), the share of
upstream's words the generated file uses and the generated words upstream never uses, and the
statements per story (mean, median, 90th percentile, max) before each question, as the model's
memory sees them.

With --sweeps: two `memn2n sweep` directories of one configuration, one trained on the real
training split and one on generated training files, both tested on the same (real) test split:
per task (those both trained), the test error of the restart selected by training error (best of
N) and the mean over all N restarts, and whether the two are within 3 points. --names heads the
columns (for two real samples, say).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tasks import babi  # noqa: E402

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--generated", type=Path)
parser.add_argument("--upstream", type=Path, default=Path(__file__).resolve().parents[2] / "shared/data/babi/v1.2/en")
parser.add_argument("--sweeps", type=Path, nargs=2, metavar=("REAL", "GENERATED"))
parser.add_argument("--names", nargs=2, default=["real train", "generated train"], help="the two sweeps' column heads")
args = parser.parse_args()
if not (args.generated or args.sweeps):
    parser.error("give --generated DIR, --sweeps REAL GENERATED, or both")


def profile(folder: Path, task: int) -> tuple[set[str], list[int]]:
    questions = babi.read_file(babi.task_file(folder, task, "train"), task)
    words = {w for q in questions for s in q.story + (q.question,) for w in s} | {q.answer for q in questions}
    return words, [len(q.story) for q in questions]


def lengths(sizes: list[int]) -> str:
    deciles = statistics.quantiles(sizes, n=10)
    return f"{statistics.mean(sizes):.1f} / {statistics.median(sizes):g} / {deciles[-1]:g} / {max(sizes)}"


def test_errors(sweep: Path) -> dict[int, tuple[float, float]]:
    """task -> (test error of the selected restart, mean test error over the restarts)."""
    results = json.loads((sweep / "results.json").read_text())
    errors = {}
    for trial in results["trials"]:
        for task in trial["tasks"]:
            per_restart = [t["test_error"] for r in trial["restarts"] for t in r["tasks"] if t["task"] == task]
            errors[task] = (per_restart[trial["selected"]], statistics.mean(per_restart))
    return errors


def near(a: float, b: float) -> bool:
    return abs(a - b) <= 3


def within(a: float, b: float) -> str:
    return "yes" if near(a, b) else "**no**"


def error_table(real: dict[int, tuple[float, float]], made: dict[int, tuple[float, float]], names: list[str]) -> None:
    """Tasks both sweeps trained; ``names`` heads the two sweeps' columns."""
    tasks = sorted(real.keys() & made.keys())
    first, second = names
    print(f"| task | best: {first} | {second} | within 3 | mean of restarts: {first} | {second} | within 3 |")
    print("| ---: | ---: | ---: | :---: | ---: | ---: | :---: |")
    for task in tasks:
        (best_r, mean_r), (best_g, mean_g) = real[task], made[task]
        print(f"| {task} | {best_r:.1f} | {best_g:.1f} | {within(best_r, best_g)} | {mean_r:.1f} | {mean_g:.1f} | {within(mean_r, mean_g)} |")
    close = [sum(near(real[t][i], made[t][i]) for t in tasks) for i in (0, 1)]
    means = [[statistics.mean(errors[t][i] for t in tasks) for errors in (real, made)] for i in (0, 1)]
    print(f"| **mean** | **{means[0][0]:.1f}** | **{means[0][1]:.1f}** | **{close[0]} of {len(tasks)}** "
          f"| **{means[1][0]:.1f}** | **{means[1][1]:.1f}** | **{close[1]} of {len(tasks)}** |")


def vocabulary_table() -> None:
    print("| task | words (upstream / generated) | upstream words used | generated-only words "
          "| statements before a question, upstream (mean / median / p90 / max) | generated |")
    print("| ---: | ---: | ---: | --- | ---: | ---: |")
    for task in babi.TASK_IDS:
        real_words, real_sizes = profile(args.upstream, task)
        made_words, made_sizes = profile(args.generated, task)
        extra = ", ".join(sorted(made_words - real_words)) or "none"
        print(f"| {task} | {len(real_words)} / {len(made_words)} | {100 * len(made_words & real_words) / len(real_words):.0f}% "
              f"| {extra} | {lengths(real_sizes)} | {lengths(made_sizes)} |")


if args.generated:
    vocabulary_table()
if args.sweeps:
    error_table(*(test_errors(sweep) for sweep in args.sweeps), args.names)
