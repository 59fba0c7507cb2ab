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
import re
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
    task: int  # bAbI task number (0 for a user's own story)
    story: tuple[tuple[str, ...], ...]  # tokenized sentences before the question, oldest first
    sentences: tuple[str, ...]  # the same sentences as written, for display
    line_ids: tuple[int, ...]  # each story sentence's id in the file
    question: tuple[str, ...]  # tokenized
    text: str  # the question as written
    answer: str | None  # one answer-vocabulary entry, even a list ("n,w"); None when not given
    supporting: tuple[int, ...]  # line ids of the supporting facts: shown, never trained on
    story_id: int  # index of the story within its file (the validation split keeps stories whole)
    source: str  # "file:line", for messages


def tokenize(text: str) -> list[str]:
    """Lower-case, split on white space, strip Unicode punctuation, drop empty tokens."""
    words = ("".join(c for c in w if not unicodedata.category(c).startswith("P")) for w in text.lower().split())
    return [w for w in words if w]


def normalize_answer(text: str) -> str:
    return text.strip().lower()


class _Story:
    """The sentences of one story so far; questions are asked about them."""

    def __init__(self, story_id: int):
        self.id, self.tokens, self.texts, self.line_ids, self.questions = story_id, [], [], [], 0

    def tell(self, text: str, line_id: int) -> None:
        self.tokens.append(tuple(tokenize(text)))
        self.texts.append(text.strip())
        self.line_ids.append(line_id)

    def ask(self, task: int, text: str, answer: str | None, supporting: tuple[int, ...], path, lineno: int) -> Question:
        if not self.tokens:
            raise UserError("question with no sentence before it", path, lineno)
        self.questions += 1
        return Question(task, tuple(self.tokens), tuple(self.texts), tuple(self.line_ids), tuple(tokenize(text)),
                        text.strip(), answer, supporting, self.id, f"{path}:{lineno}")


def decode_lines(raw: bytes, path) -> list[str]:
    """UTF-8 text as lines; binary, empty or undecodable input raises UserError."""
    if b"\x00" in raw:
        raise UserError("not a text file", path)
    if not raw.strip():
        raise UserError("empty file", path)
    lines = []
    for lineno, line in enumerate(raw.splitlines(), 1):
        try:
            lines.append(line.decode("utf-8"))
        except UnicodeDecodeError:
            raise UserError("not UTF-8 text", path, lineno) from None
    return lines


def parse_babi(lines: list[str], path, task: int = 0, answers_required: bool = True) -> list[Question]:
    """The upstream format. Without ``answers_required``, a line ending in '?' is a question too."""
    questions: list[Question] = []
    story, previous_id = None, 0
    for lineno, line in enumerate(lines, 1):
        if not line.strip():
            continue
        number, _, text = line.strip().partition(" ")
        if not number.isdigit() or not text:
            raise UserError(f"expected '<id> <sentence>', got {line.strip()[:40]!r}", path, lineno)
        line_id = int(number)
        if line_id == 1:
            story = _Story(story.id + 1 if story else 0)
        elif line_id != previous_id + 1 or story is None:
            raise UserError(f"line id {line_id} does not follow {previous_id}", path, lineno)
        previous_id = line_id
        if "\t" not in text and (answers_required or not text.rstrip().endswith("?")):
            story.tell(text, line_id)
            continue
        fields = text.split("\t")
        if len(fields) > 3 or (answers_required and (len(fields) < 2 or not fields[1].strip())):
            raise UserError("expected 'question<TAB>answer<TAB>supporting ids'", path, lineno)
        support = fields[2].split() if len(fields) == 3 else []
        if not all(s.isdigit() for s in support):
            raise UserError(f"supporting ids must be numbers, got {fields[2]!r}", path, lineno)
        answer = normalize_answer(fields[1]) if len(fields) > 1 and fields[1].strip() else None
        questions.append(story.ask(task, fields[0], answer, tuple(int(s) for s in support), path, lineno))
    if not questions:
        raise UserError("no questions in file", path)
    return questions


def parse_plain(lines: list[str], path) -> list[Question]:
    """Plain text: a sentence per line, a line ending in '?' is a question, a blank line starts a new story."""
    questions: list[Question] = []
    story, start = _Story(0), 0  # start: the line the current story begins on

    def check_asked(story: _Story, start: int) -> None:
        if story.tokens and not story.questions:
            raise UserError("story with no question (a question is a line ending in '?')", path, start)

    for lineno, line in enumerate(lines, 1):
        if not line.strip():
            if story.tokens:
                check_asked(story, start)
                story, start = _Story(story.id + 1), 0
            continue
        start = start or lineno
        if line.strip().endswith("?"):
            questions.append(story.ask(0, line, None, (), path, lineno))
        else:
            story.tell(line, len(story.line_ids) + story.questions + 1)
    check_asked(story, start)
    return questions


BABI_LINE = re.compile(r"^\d+ ")


def read_stories(raw: bytes, path) -> list[Question]:
    """A user's stories, in the bAbI format (answers optional) or plain text, told apart by the first line."""
    lines = decode_lines(raw, path)
    first = next(line for line in lines if line.strip())
    if BABI_LINE.match(first.strip()):
        return parse_babi(lines, path, answers_required=False)
    return parse_plain(lines, path)


def read_file(path: Path, task: int) -> list[Question]:
    """Parse one upstream file. Bad input raises UserError naming the file and line."""
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise UserError(f"cannot read: {e.strerror}", path) from None
    return parse_babi(decode_lines(raw, path), path, task)


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
    support: torch.Tensor  # (N, M) True where the slot holds a supporting fact of the question
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
    support = torch.zeros(len(questions), memory_size, dtype=torch.bool)
    for n, q in enumerate(questions):
        recent = [row(s) for s in reversed(q.story[-memory_size:])]
        memory[n, : len(recent)] = torch.tensor(recent)
        for line_id in q.supporting:
            slot = len(q.line_ids) - 1 - q.line_ids.index(line_id) if line_id in q.line_ids else memory_size
            if slot < memory_size:
                support[n, slot] = True
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
        support=support,
        unknown_words=unknown,
    )


@register_task("babi")
class BabiTask:
    summary = "the 20 bAbI question-answering tasks (v1.1 or v1.2; 1k or 10k; en, hn, shuffled)"
    kind = "qa"
    # Table 1 of the paper (arXiv:1503.08895), the nine MemN2N columns: test error (%) on tasks 1-20
    # with 1k training examples; then mean error and failed tasks (error > 5%) on 1k and on 10k, as
    # printed (the 10k rows give no per-task errors). Each column is the best of 10 restarts.
    TABLE_1 = {
        "BoW": ((0.6, 17.6, 71.0, 32.0, 18.3, 8.7, 23.5, 11.4, 21.1, 22.8, 4.1, 0.3, 10.5, 1.3, 24.3, 52.0, 45.4, 48.1, 89.7, 0.1),
               (25.1, 15), (15.4, 9)),
        "PE": ((0.1, 21.6, 64.2, 3.8, 14.1, 7.9, 21.6, 12.6, 23.3, 17.4, 4.3, 0.3, 9.9, 1.8, 0.0, 52.1, 50.1, 13.6, 87.4, 0.0),
              (20.3, 13), (9.4, 6)),
        "PE LS": ((0.2, 12.8, 58.8, 11.6, 15.7, 8.7, 20.3, 12.7, 17.0, 18.6, 0.0, 0.1, 0.3, 2.0, 0.0, 1.6, 49.0, 10.1, 85.6, 0.0),
                 (16.3, 12), (7.2, 4)),
        "PE LS RN": ((0.0, 8.3, 40.3, 2.8, 13.1, 7.6, 17.3, 10.0, 13.2, 15.1, 0.9, 0.2, 0.4, 1.7, 0.0, 1.3, 51.0, 11.1, 82.8, 0.0),
                    (13.9, 11), (6.6, 4)),
        "1 hop PE LS joint": ((0.8, 62.0, 76.9, 22.8, 11.0, 7.2, 15.9, 13.2, 5.1, 10.6, 8.4, 0.4, 6.3, 36.9, 46.4, 47.4, 44.4, 9.6, 90.7, 0.0),
                             (25.8, 17), (24.5, 16)),
        "2 hops PE LS joint": ((0.0, 15.6, 31.6, 2.2, 13.4, 2.3, 25.4, 11.7, 2.0, 5.0, 1.2, 0.0, 0.2, 8.1, 0.5, 51.3, 41.2, 10.3, 89.9, 0.1),
                              (15.6, 11), (10.9, 7)),
        "3 hops PE LS joint": ((0.1, 14.0, 33.1, 5.7, 14.8, 3.3, 17.9, 10.1, 3.1, 6.6, 0.9, 0.3, 1.4, 8.2, 0.0, 3.5, 44.5, 9.2, 90.2, 0.0),
                              (13.3, 11), (7.9, 6)),
        "PE LS RN joint": ((0.0, 11.4, 21.9, 13.4, 14.4, 2.8, 18.3, 9.3, 1.9, 6.5, 0.3, 0.1, 0.2, 6.9, 0.0, 2.7, 40.4, 9.4, 88.0, 0.0),
                          (12.4, 11), (7.5, 6)),
        "PE LS LW joint": ((0.1, 18.8, 31.7, 17.5, 12.9, 2.0, 10.1, 6.1, 1.5, 2.6, 3.3, 0.0, 0.5, 2.0, 1.8, 51.0, 42.6, 9.2, 90.6, 0.2),
                          (15.2, 10), (11.0, 6)),
    }

    def tokenize(self, text: str) -> list[str]:
        return tokenize(text)

    def metrics(self, counts: dict) -> dict:
        """Error in percent and mean loss from summed counts {correct, total, loss}; with the counts
        {supported, on_support (one per hop), on_support_any}, also the share (%) of questions with
        supporting facts whose most-attended sentence is one, per hop and for some hop."""
        total = counts["total"]
        figures = {"error": 100.0 * (1.0 - counts["correct"] / total), "loss": counts["loss"] / total}
        if counts.get("supported"):
            figures["attention_on_support"] = [100.0 * hits / counts["supported"] for hits in counts["on_support"]]
            figures["attention_on_support_any"] = 100.0 * counts["on_support_any"] / counts["supported"]
        return figures

    def read(self, data_dir: Path, task_ids: list[int], split: str) -> list[Question]:
        return [q for t in task_ids for q in read_file(task_file(data_dir, t, split), t)]
