"""The bAbI question-answering tasks (Weston et al. 2015), as used in Section 4 of the paper.

Upstream format, one file per task and split (``qaN_<name>_{train,test}.txt``)::

    1 Mary moved to the bathroom.
    2 John went to the hallway.
    3 Where is Mary? <TAB> bathroom <TAB> 1

An id of 1 starts a new story; a line holding a tab is a question, followed by its answer and the
ids of its supporting facts. Each question is one example: the sentences before it in its story
(questions excluded) are the memory, the question is the query. Nothing here assumes English:
the same reader serves ``en``, ``hn`` (Hindi) and ``shuffled``.
"""

from __future__ import annotations

import os
import random
import unicodedata
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import torch

from memn2n_cli.errors import UserError
from tasks import register_task

NIL = "<nil>"  # word id 0: pads sentences and memories; its embedding is held at zero (Sec. 4.1)
TASK_IDS = range(1, 21)
DOWNLOAD_URL = "http://www.thespermwhale.com/jaseweston/babi/tasks_1-20_v1-2.tar.gz"
ARCHIVE_ROOT = "tasks_1-20_v1-2"  # the folder the upstream archive unpacks to
CHECKSUMS = Path(__file__).with_name("babi_v1.2.sha256")


@dataclass(frozen=True)
class Question:
    task: int
    story: tuple[tuple[str, ...], ...]  # tokenized sentences before the question, oldest first
    line_ids: tuple[int, ...]  # each story sentence's id in the file
    question: tuple[str, ...]
    answer: str  # one entry of the answer vocabulary, even when it lists words ("n,w")
    supporting: tuple[int, ...]  # line ids of the supporting facts: shown, never trained on
    story_id: int  # index of the story within its file (the validation split keeps stories whole)
    source: str  # "file:line", for messages


def tokenize(text: str) -> list[str]:
    """Lower-case, split on white space, strip Unicode punctuation, drop empty tokens."""
    words = ("".join(c for c in w if not unicodedata.category(c).startswith("P")) for w in text.lower().split())
    return [w for w in words if w]


def normalize_answer(text: str) -> str:
    return text.strip().lower()


def read_file(path: Path, task: int) -> list[Question]:
    """Parse one upstream file. Bad input raises UserError naming the file and line."""
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise UserError(f"cannot read: {e.strerror}", path) from None
    if not raw.strip():
        raise UserError("empty file", path)
    questions: list[Question] = []
    story: list[tuple[str, ...]] = []
    line_ids: list[int] = []
    story_id, previous_id = -1, 0
    for lineno, line_bytes in enumerate(raw.splitlines(), 1):
        try:
            line = line_bytes.decode("utf-8")
        except UnicodeDecodeError:
            raise UserError("not UTF-8 text", path, lineno) from None
        if not line.strip():
            continue
        number, _, text = line.strip().partition(" ")
        if not number.isdigit() or not text:
            raise UserError(f"expected '<id> <sentence>', got {line.strip()[:40]!r}", path, lineno)
        line_id = int(number)
        if line_id == 1:
            story, line_ids, story_id = [], [], story_id + 1
        elif line_id != previous_id + 1 or story_id < 0:
            raise UserError(f"line id {line_id} does not follow {previous_id}", path, lineno)
        previous_id = line_id
        if "\t" not in text:
            story.append(tuple(tokenize(text)))
            line_ids.append(line_id)
            continue
        fields = text.split("\t")
        if len(fields) not in (2, 3) or not fields[1].strip():
            raise UserError("expected 'question<TAB>answer<TAB>supporting ids'", path, lineno)
        support = fields[2].split() if len(fields) == 3 else []
        if not all(s.isdigit() for s in support):
            raise UserError(f"supporting ids must be numbers, got {fields[2]!r}", path, lineno)
        if not story:
            raise UserError("question with no sentence before it", path, lineno)
        questions.append(
            Question(task, tuple(story), tuple(line_ids), tuple(tokenize(fields[0])),
                     normalize_answer(fields[1]), tuple(int(s) for s in support), story_id,
                     f"{path}:{lineno}")
        )
    if not questions:
        raise UserError("no questions in file", path)
    return questions


def task_file(data_dir: Path, task: int, split: str) -> Path:
    """``qaN_<name>_<split>.txt`` (upstream) or ``qaN_<split>.txt`` (the en-valid folders)."""
    matches = sorted(data_dir.glob(f"qa{task}_*{split}.txt"))
    if not matches:
        raise UserError(f"no file for task {task}, split {split!r} (expected qa{task}_*_{split}.txt)", data_dir)
    return matches[0]


def parse_task_ids(values: list[str]) -> list[int]:
    """``["1", "3"]`` -> [1, 3]; ``["all"]`` -> 1..20."""
    ids: set[int] = set()
    for value in values or ["1"]:
        if value == "all":
            ids.update(TASK_IDS)
        elif value.isdigit() and int(value) in TASK_IDS:
            ids.add(int(value))
        else:
            raise UserError(f"unknown bAbI task {value!r}: use a number from 1 to 20, or 'all'")
    return sorted(ids)


def default_data_dir() -> Path:
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache / "memn2n" / "babi" / ARCHIVE_ROOT / "en"


def resolve_data_dir(given: Path | None) -> Path:
    """``--data-dir``, else ``$MEMN2N_DATA_DIR``, else the download cache (fetched when missing)."""
    if given is None and os.environ.get("MEMN2N_DATA_DIR"):
        given = Path(os.environ["MEMN2N_DATA_DIR"])
    if given is not None:
        if not given.is_dir():
            raise UserError("data directory not found", given)
        return given
    data_dir = default_data_dir()
    if not data_dir.is_dir():
        from memn2n_cli.download import download_archive

        download_archive(os.environ.get("MEMN2N_BABI_URL", DOWNLOAD_URL), data_dir.parents[1], CHECKSUMS)
    return data_dir


def split_validation(questions: list[Question], fraction: float, seed: int) -> tuple[list[Question], list[Question]]:
    """Hold out ``fraction`` of the stories of each task (Sec. 4.2: 10% of the training set)."""
    stories = sorted({(q.task, q.story_id) for q in questions})
    random.Random(seed).shuffle(stories)
    held = set()
    for task in sorted({t for t, _ in stories}):
        of_task = [s for s in stories if s[0] == task]
        held.update(of_task[: round(fraction * len(of_task))])
    return [q for q in questions if (q.task, q.story_id) not in held], [q for q in questions if (q.task, q.story_id) in held]


@dataclass
class Vocabulary:
    """Words (id 0 is the nil word) and the answer vocabulary, whose entries are words too."""

    words: list[str]
    answers: list[str]

    def __post_init__(self):
        self.word_ids = {w: i for i, w in enumerate(self.words)}
        self.answer_ids = {a: i for i, a in enumerate(self.answers)}

    @classmethod
    def build(cls, questions: list[Question]) -> Vocabulary:
        answers = sorted({q.answer for q in questions})
        words = {w for q in questions for sentence in q.story for w in sentence} | {w for q in questions for w in q.question}
        return cls([NIL, *sorted(words | set(answers))], answers)

    def answer_word_ids(self) -> list[int]:
        return [self.word_ids[a] for a in self.answers]

    def to_json(self) -> dict:
        return {"words": self.words, "answers": self.answers}

    @classmethod
    def from_json(cls, data: dict) -> Vocabulary:
        if not isinstance(data, dict) or data.get("words", [None])[0] != NIL or not data.get("answers"):
            raise ValueError("not a memn2n vocabulary")
        return cls(list(data["words"]), list(data["answers"]))


@dataclass
class Encoded:
    """Questions as tensors. Sentences are stored once, in a table; memories refer to them by row.

    ``memory[n, i]`` is the sentence-table row of the i-th most recent sentence of example n
    (slot 0 is the most recent: the paper's reverse order, Sec. 4.1); row 0 is the empty sentence.
    """

    sentences: torch.Tensor  # (S, J) word ids, 0 = nil padding
    memory: torch.Tensor  # (N, M) sentence rows, 0 = empty slot
    memory_size: torch.Tensor  # (N,) number of filled slots
    query: torch.Tensor  # (N,) sentence row of the question
    answer: torch.Tensor  # (N,) answer-vocabulary id, -1 when the answer was never seen in training
    task: torch.Tensor  # (N,) bAbI task number
    width: torch.Tensor  # (N,) words in the longest sentence of the example (memory or question)
    unknown_words: Counter  # words mapped to nil because training never saw them

    def __len__(self) -> int:
        return len(self.answer)

    def to(self, device) -> Encoded:
        moved = {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in vars(self).items()}
        return Encoded(**moved)


def encode(questions: list[Question], vocab: Vocabulary, memory_size: int) -> Encoded:
    """Keep the ``memory_size`` most recent sentences of each story and map words to ids."""
    rows: dict[tuple[str, ...], int] = {(): 0}
    unknown: Counter = Counter()

    def row(sentence: tuple[str, ...]) -> int:
        if sentence not in rows:
            rows[sentence] = len(rows)
            unknown.update(w for w in sentence if w not in vocab.word_ids)
        return rows[sentence]

    memory = torch.zeros(len(questions), memory_size, dtype=torch.long)
    for n, q in enumerate(questions):
        recent = [row(s) for s in reversed(q.story[-memory_size:])]
        memory[n, : len(recent)] = torch.tensor(recent)
    query = torch.tensor([row(q.question) for q in questions])
    width = max(1, max(len(s) for s in rows))
    sentences = torch.zeros(len(rows), width, dtype=torch.long)
    lengths = torch.zeros(len(rows), dtype=torch.long)
    for sentence, r in rows.items():
        sentences[r, : len(sentence)] = torch.tensor([vocab.word_ids.get(w, 0) for w in sentence], dtype=torch.long)
        lengths[r] = len(sentence)
    return Encoded(
        sentences=sentences,
        memory=memory,
        memory_size=torch.tensor([min(len(q.story), memory_size) for q in questions]),
        query=query,
        answer=torch.tensor([vocab.answer_ids.get(q.answer, -1) for q in questions]),
        task=torch.tensor([q.task for q in questions]),
        width=torch.maximum(lengths[memory].max(dim=1).values, lengths[query]),
        unknown_words=unknown,
    )


@register_task("babi")
class BabiTask:
    name = "babi"
    summary = "the 20 bAbI question-answering tasks (v1.1 or v1.2; 1k or 10k; en, hn, shuffled)"
    kind = "qa"

    def tokenize(self, text: str) -> list[str]:
        return tokenize(text)

    def metrics(self, counts: dict[str, float]) -> dict[str, float]:
        """Error in percent and mean loss, from summed counts {correct, total, loss}."""
        total = counts["total"]
        return {"error": 100.0 * (1.0 - counts["correct"] / total), "loss": counts["loss"] / total}

    def read(self, data_dir: Path, task_ids: list[int], split: str) -> list[Question]:
        return [q for t in task_ids for q in read_file(task_file(data_dir, t, split), t)]
