"""A second real training sample: questions 1,001 to 2,000 of each upstream 10k training file.

    python benchmarks/real_sample.py --out DIR [--tenk ../shared/data/babi/v1.2/en-10k] [--en ../shared/data/babi/v1.2/en]

The 1k training files are the first 1,000 questions of the 10k ones, so the next 1,000 are a fresh
draw from the same simulator: training on them and on the 1k files, both tested on the real test
split, shows how far two real samples of 1,000 questions differ (the noise floor of comparing
generated data with real data, BENCHMARKS.md "Generated bAbI"). Writes DIR/qaN_*_train.txt (whole
stories, the last one cut after the 1,000th question) and links the 1k test files beside them.
Tasks whose 10k training file is missing (task 3 in ../shared/data) are left out.
"""

from __future__ import annotations

import argparse
from pathlib import Path

DATA = Path(__file__).resolve().parents[2] / "shared/data/babi/v1.2"
parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--out", type=Path, required=True)
parser.add_argument("--tenk", type=Path, default=DATA / "en-10k")
parser.add_argument("--en", type=Path, default=DATA / "en")
parser.add_argument("--skip", type=int, default=1000, help="questions to skip: those of the 1k file")
parser.add_argument("--questions", type=int, default=1000)
args = parser.parse_args()


def stories(path: Path) -> list[list[str]]:
    told: list[list[str]] = []
    for line in path.read_text().splitlines():
        if line.startswith("1 "):
            told.append([])
        told[-1].append(line)
    return told


args.out.mkdir(parents=True, exist_ok=True)
for test in sorted(args.en.glob("qa*_test.txt")):
    train = args.tenk / test.name.replace("_test", "_train")
    if not train.exists():
        print(f"skipped: {train} is missing")
        continue
    seen, kept, asked = 0, [], 0  # questions passed over, lines kept, questions kept
    for story in stories(train):
        if seen < args.skip:  # the 1k file's stories (it may end inside one: skip all of that one)
            seen += sum("\t" in line for line in story)
            continue
        for line in story:
            if asked == args.questions:
                break
            kept.append(line)
            asked += "\t" in line
    (args.out / train.name).write_text("\n".join(kept) + "\n")
    link = args.out / test.name
    link.unlink(missing_ok=True)
    link.symlink_to(test.resolve())
    print(f"{train.name}: {asked} questions")
