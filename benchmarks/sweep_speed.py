"""Sweep speed: the wall time of whole `memn2n sweep babi` commands (a Table 1 column) from one or
more checkouts, run in turn.

    python benchmarks/sweep_speed.py --repo /path/to/old --repo .          # PE LS RN: 20 tasks x 10 restarts
    python benchmarks/sweep_speed.py --repo OLD --repo . --joint --grid epochs=6 --grid ls_epochs=2
    python benchmarks/sweep_speed.py --repo OLD --repo . --rounds 2        # A B A B

Each run is `python -m memn2n_cli sweep babi --task all --restarts 10 --json ...` started in that
checkout, into a fresh temporary folder, process start-up, data loading and evaluation included.
Prints one JSON line per run (checkout, commit, seconds, mean test error and failed tasks) and, with
two checkouts, the ratio of the first one's median time to the second one's.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--repo", type=Path, action="append", help="checkout to time (repeatable; default: this one)")
parser.add_argument("--joint", action="store_true", help="the joint column (one model for the 20 tasks)")
parser.add_argument("--grid", action="append", default=[], help="passed to the sweep, e.g. epochs=6")
parser.add_argument("--restarts", type=int, default=10)
parser.add_argument("--rounds", type=int, default=1)
parser.add_argument("--data-dir", type=Path, default=Path(__file__).resolve().parents[2] / "shared/data/babi/v1.2/en")
args = parser.parse_args()
repos = [r.resolve() for r in args.repo or [Path(__file__).resolve().parents[1]]]

times: dict[Path, list[float]] = {repo: [] for repo in repos}
for _ in range(args.rounds):
    for repo in repos:
        commit = subprocess.run(["git", "-C", str(repo), "rev-parse", "--short", "HEAD"], capture_output=True,
                                text=True).stdout.strip()
        with tempfile.TemporaryDirectory() as scratch:
            command = [sys.executable, "-m", "memn2n_cli", "sweep", "babi", "--task", "all", "--restarts",
                       str(args.restarts), "--out", str(Path(scratch) / "sweep"), "--data-dir", str(args.data_dir),
                       "--json", *(["--joint"] if args.joint else []), *(f"--grid={g}" for g in args.grid)]
            started = time.perf_counter()
            done = subprocess.run(command, cwd=repo, capture_output=True, text=True)
            seconds = time.perf_counter() - started
        if done.returncode != 0:
            sys.exit(f"{repo}: {done.stderr.strip().splitlines()[-1] if done.stderr.strip() else done.returncode}")
        column = next(iter(json.loads(done.stdout)["columns"].values()))
        times[repo].append(seconds)
        print(json.dumps({"repo": str(repo), "commit": commit, "joint": args.joint, "grid": args.grid,
                          "seconds": round(seconds, 1), "mean_test_error": round(column["mean_test_error"], 2),
                          "failed_tasks": column["failed_tasks"]}), flush=True)
if len(repos) == 2:
    first, second = (statistics.median(times[r]) for r in repos)
    print(json.dumps({"ratio": round(first / second, 2), "of": [str(r) for r in repos]}))
