"""The fuzz cases of tests/test_fuzz.py, many more of them: how many inputs give a result ("ok"),
how many one clear error ("refused"), and how many anything else ("traceback": an exception that
would reach the user as one, or a hang past 30 s; the first few are printed on stderr).

    python benchmarks/fuzz.py --cases 3000 [--seed 0] [--data-dir ../shared/data/babi/v1.2/en]
                              [--only "hostile run directories" ...]

Trains bAbI task 1 for a few epochs into a temporary folder, then runs ``--cases`` mutated story
files, as many mutated training files, a third as many damaged run directories and as many
hostile ones (read through the library's entry points), and a thirtieth as many mutated Penn
Treebank corpora (``--only``: those kinds alone), and prints the counts as JSON.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import random
import sys
import tempfile
import time
import traceback
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--cases", type=int, default=3000)
parser.add_argument("--seed", type=int, default=0)
parser.add_argument("--data-dir", type=Path, default=ROOT.parent / "shared/data/babi/v1.2/en")
parser.add_argument("--only", action="append", help="a kind of case to run alone (repeatable)")
args = parser.parse_args()

import memn2n  # noqa: E402
import pytest  # noqa: E402
from memn2n_cli.checkpoint import load_model  # noqa: E402
from tasks import get_task  # noqa: E402
from tasks.babi import task_file  # noqa: E402
from memn2n_cli.errors import UserError  # noqa: E402
from tests.test_fuzz import (deadline, hostile_run_case, ptb_case, run_directory_case, story_case,  # noqa: E402
                             training_file_case)

logging.getLogger("memn2n").setLevel(logging.ERROR)  # the warnings of unknown words, thousands of them
scratch = Path(tempfile.mkdtemp(prefix="memn2n-fuzz-"))
os.environ["XDG_CACHE_HOME"] = str(scratch / "cache")
run = scratch / "run"
memn2n.train("babi", run, data_dir=args.data_dir, tasks=[1], epochs=5, ls_epochs=2)
model, _, vocab = load_model(run)
babi_lines = b"\n".join(task_file(args.data_dir, 1, "train").read_bytes().split(b"\n")[:40]) + b"\n"
ptb_lines = [" " + " ".join(line.split(" ", 1)[1].split("\t")[0].lower().rstrip(".?").split()) + " \n"
             for line in task_file(args.data_dir, 1, "train").read_text().splitlines()][:300]
(scratch / "outside.json").write_text('{"words": ["<nil>", "a"], "answers": ["a"]}')
rng, counts, shown, started = random.Random(args.seed), {}, [], time.perf_counter()


def tally(case) -> str:
    """The case's outcome; "traceback" for an exception other than a UserError, or a hang."""
    try:
        with deadline(30):
            return case()
    except UserError:  # the test's own check that a damaged file is refused
        return "refused"
    except (Exception, pytest.fail.Exception):  # pytest's: a damaged file read as it was
        if len(shown) < 5:
            shown.append(1)
            traceback.print_exc()
        return "traceback"


for kind, n, case in [
    ("story files", args.cases, lambda: story_case(rng, model, vocab, scratch / "story.txt")),
    ("training files", args.cases, lambda: training_file_case(rng, scratch, babi_lines, get_task("babi"))),
    ("run directories", args.cases // 3, lambda: run_directory_case(rng, run, scratch / "damaged")),
    ("hostile run directories", args.cases // 3,
     lambda: hostile_run_case(rng, run, scratch / "hostile", scratch / "outside.json")),
    ("penn treebank files", args.cases // 30, lambda: ptb_case(rng, scratch, ptb_lines)),
]:
    if args.only is None or kind in args.only:
        counts[kind] = {"tried": n, **Counter(tally(case) for _ in range(n))}
print(json.dumps({"seed": args.seed, "counts": counts, "seconds": round(time.perf_counter() - started, 1)}))
