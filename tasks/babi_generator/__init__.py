"""memn2n's own bAbI simulator: the 20 tasks generated offline, in the upstream file format.

Each task's generator lives in the module of its family and registers itself with
``@generator(task, name)`` (world.py). ``write_task_files`` writes ``qaN_<name>_{train,test}.txt``
that the bAbI plugin reads like the upstream files. The same seed gives the same bytes: every file
draws from its own ``random.Random`` seeded with the seed, the task and the split.
"""

from __future__ import annotations

import random
from pathlib import Path

from tasks.babi_generator import movement, narration, reasoning  # noqa: F401  (they register the generators)
from tasks.babi_generator.world import GENERATORS, generate_file


def file_rng(seed: int, task: int, split: str) -> random.Random:
    return random.Random(f"memn2n-babi-{seed}-{task}-{split}")


def write_task_files(task: int, out: Path, train: int, test: int, seed: int) -> list[Path]:
    """Write the train and test files of one task into ``out``, both or neither (an interrupted
    generation leaves no half file to be read as a task); returns their paths."""
    from memn2n_cli.checkpoint import write_files

    files = {f"qa{task}_{GENERATORS[task].name}_{split}.txt": generate_file(task, questions, file_rng(seed, task, split)).encode()
             for split, questions in (("train", train), ("test", test))}
    write_files(out, files)
    return [out / name for name in files]
