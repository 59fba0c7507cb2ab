"""A stand-in for the Penn Treebank made of the bAbI simulator's sentences, offline.

Not the Penn Treebank: the statements of stories that memn2n's bAbI simulator
(tasks/babi_generator) tells, written in the shape of Mikolov's files so that every
language-model command can be tried without a download. The rule, in one place (the tests'
small corpus uses it too):

* stories of the bAbI tasks asked for (default all 20), a task drawn at random for each; their
  statements (not the questions), lower-cased and without punctuation (`tasks.qa.tokenize`);
* consecutive whole statements joined into lines of about 21 words, PTB's average (each line
  closes once it reaches a length drawn from 10 to 28 words), written as PTB writes a line:
  ``" word word ... word \\n"``;
* words outside the training file's 100 most frequent become ``<unk>`` in every file, as words
  outside Mikolov's 10,000 did (with fewer distinct training words, all but the rarest are kept,
  so that ``<unk>`` occurs in training as in PTB).

Each split draws from its own ``random.Random`` seeded with the seed and the split, so the same
seed writes the same bytes and valid and test hold other stories than train. The folder gets a
``GENERATED.md`` saying what it is; `tasks.lm.resolve_data_dir` reads that marker, and
`memn2n data download ptb` refuses a folder that holds it.
"""

from __future__ import annotations

import random
from collections import Counter
from pathlib import Path

from memn2n_cli.configs import SPLITS

MARKER = "GENERATED.md"  # in a generated folder only: never in the one `memn2n data download ptb` fills
LINE_WORDS = (10, 28)  # a line closes once it holds at least a length drawn from this range: ~21 words on average
VOCABULARY = 100  # words kept; the rest are <unk>
UNK = "<unk>"


def split_rng(seed: int, split: str) -> random.Random:
    return random.Random(f"memn2n-ptb-{seed}-{split}")


def statements(task_ids: list[int], rng: random.Random):
    """Endless: the statements of one story after another, each a list of words."""
    from tasks.babi_generator.world import GENERATORS
    from tasks.qa import tokenize

    while True:
        for line in GENERATORS[rng.choice(task_ids)].story(rng).lines:
            if "\t" not in line:  # a question holds tabs (question, answer, supporting facts)
                yield tokenize(line)


def lines(count: int, task_ids: list[int], rng: random.Random) -> list[list[str]]:
    """``count`` lines of words, each consecutive whole statements of about 21 words."""
    told, out = statements(task_ids, rng), []
    for _ in range(count):
        line, length = [], rng.randint(*LINE_WORDS)
        while len(line) < length:
            line += next(told)
        out.append(line)
    return out


def kept_words(train: list[list[str]]) -> set[str]:
    """The training lines' ``VOCABULARY`` most frequent words (ties by spelling), but never all of them."""
    counts = Counter(w for line in train for w in line)
    ranked = sorted(counts, key=lambda w: (-counts[w], w))
    return set(ranked[: min(VOCABULARY, len(ranked) - 1)])


def corpus(train: int, test: int, task_ids: list[int], seed: int) -> dict[str, list[str]]:
    """split -> its lines in PTB's format: ``train`` training lines, ``test`` valid and test lines each."""
    words = {split: lines(train if split == "train" else test, task_ids, split_rng(seed, split)) for split in SPLITS}
    kept = kept_words(words["train"])
    return {split: [" " + " ".join(w if w in kept else UNK for w in line) + " \n" for line in split_lines]
            for split, split_lines in words.items()}


def write_corpus(out: Path, train: int, test: int, task_ids: list[int], seed: int) -> dict[str, list[str]]:
    """Write ptb.{train,valid,test}.txt and GENERATED.md into ``out``, all or none; the lines written, by split."""
    from memn2n_cli.checkpoint import write_files

    written = corpus(train, test, task_ids, seed)
    out.mkdir(parents=True, exist_ok=True)
    sizes = ", ".join(f"{split} {len(ls):,} lines ({sum(len(line.split()) for line in ls):,} words)"
                      for split, ls in written.items())
    tasks = "all 20" if sorted(task_ids) == list(range(1, 21)) else ", ".join(map(str, task_ids))
    files = {MARKER: (
        "# Not the Penn Treebank\n\n"
        "Sentences of memn2n's bAbI simulator (tasks/babi_generator), written in the format of Mikolov's\n"
        "Penn Treebank files (ptb.train.txt, ptb.valid.txt, ptb.test.txt) so that the language-model\n"
        "commands can be tried offline: statements of simulated stories, lower-cased, without punctuation,\n"
        "joined into lines of about 21 words; words outside the 100 most frequent of the training file are\n"
        "written <unk>. Perplexities measured on it say nothing about the paper's Table 2.\n\n"
        f"Written by `memn2n data generate ptb` (tasks/ptb_generator.py): seed {seed}, bAbI tasks {tasks}.\n"
        f"{sizes}.\nThe same seed writes the same bytes.\n\n"
        "The real corpus: `memn2n data download ptb`.\n").encode()}
    files.update({f"ptb.{split}.txt": "".join(split_lines).encode() for split, split_lines in written.items()})
    # The marker first: a run cut off between the renames leaves a folder marked as a stand-in with
    # files missing, which every command refuses and `generate` writes again; marked last, it would
    # leave stand-in files taken for the real corpus, and a folder `generate` refuses to touch.
    write_files(out, files)
    return written


def is_generated(data_dir: Path) -> bool:
    return (data_dir / MARKER).is_file()
