"""Question answering data, whatever the task: stories and questions, the vocabulary, tensors.

A question-answering task (bAbI, your own `jsonl` files, a plugin) reads its files into
`Question`s; everything after that is shared: the validation split, the vocabulary, the encoding
into tensors (`Encoded`), the metrics, and the story files `predict` and `visualize` read:

    1 Mary moved to the bathroom.                      the numbered format (bAbI's own): a
    2 John went to the hallway.                        line holding a tab is a question, then
    3 Where is Mary? <TAB> bathroom <TAB> 1            its answer and supporting line ids

or plain text, a sentence per line, a line ending in '?' a question, a blank line between stories.
Nothing here assumes English: the same reader serves bAbI's ``en``, ``hn`` (Hindi) and ``shuffled``.
"""

from __future__ import annotations

import bisect
import json
import random
import re
import unicodedata
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import Callable

import torch

from memn2n_cli.errors import ArgumentError, UserError, not_a
from tasks.text import decode_lines

PASS_ERROR = 5.0  # a task passes with test error <= 5% (Table 1)
NIL = "<nil>"  # word id 0: pads sentences and memories; its embedding is held at zero (Sec. 4.1)

class Prefix(Sequence):
    """The first ``n`` items of a list that only grows: a read-only view, so that every question of
    a story shares its sentences instead of holding a copy (a copy each is quadratic in the story).
    Equal to the tuple of its items, and hashed as that tuple."""

    __slots__ = ("_items", "_n")

    def __init__(self, items: list, n: int):
        self._items, self._n = items, n

    @property
    def shared(self) -> list:
        """The list this is a prefix of: one per story, which its questions share (`_Story`)."""
        return self._items

    def __len__(self) -> int:
        return self._n

    def __getitem__(self, index):
        if isinstance(index, slice):
            return tuple(self._items[i] for i in range(*index.indices(self._n)))
        if not -self._n <= index < self._n:
            raise IndexError("Prefix index out of range")
        return self._items[index % self._n]

    def __iter__(self):
        return islice(self._items, self._n)

    def __eq__(self, other) -> bool:
        if isinstance(other, (Prefix, tuple)):
            return len(self) == len(other) and all(a == b for a, b in zip(self, other))
        return NotImplemented

    def __hash__(self) -> int:
        return hash(tuple(self))

    def __add__(self, other: tuple) -> tuple:  # as the tuple it stands for: story + (question,)
        return tuple(self) + other

    def __radd__(self, other: tuple) -> tuple:
        return other + tuple(self)

    def __repr__(self) -> str:
        return repr(tuple(self))


@dataclass(frozen=True)
class Question:
    task: int  # the task's number (bAbI: 1-20; one task of its own: 1; a user's story: 0)
    story: Sequence[tuple[str, ...]]  # tokenized sentences before the question, oldest first (a tuple or a Prefix)
    sentences: Sequence[str]  # the same sentences as written, for display
    line_ids: Sequence[int]  # each story sentence's id in the file
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


MAX_SENTENCE_WORDS = 1_000  # a longer "sentence" is not one: its batch would take gigabytes


Tokenizer = Callable[[str], list[str]]  # a task's `tokenize`: the readers below take it from the task


def words(text: str, path, lineno: int, tokenize: Tokenizer = tokenize) -> tuple[str, ...]:
    """The tokens of one sentence or question; a UserError when there are more than MAX_SENTENCE_WORDS."""
    tokens = tuple(tokenize(text))
    if len(tokens) > MAX_SENTENCE_WORDS:
        raise UserError(f"a sentence of {len(tokens):,} words (at most {MAX_SENTENCE_WORDS:,})", path, lineno)
    return tokens


def question_words(text: str, path, lineno: int, tokenize: Tokenizer = tokenize) -> tuple[str, ...]:
    """The tokens of a question: at least one (the model has nothing to read in "?")."""
    tokens = words(text, path, lineno, tokenize)
    if not tokens:
        raise UserError("question with no words", path, lineno)
    return tokens


class _Story:
    """The sentences of one story so far; questions are asked about them, and share them (`Prefix`)."""

    def __init__(self, story_id: int, tokenize: Tokenizer):
        self.id, self.tokens, self.texts, self.line_ids, self.questions = story_id, [], [], [], 0
        self.tokenize = tokenize

    def tell(self, text: str, line_id: int, path, lineno: int) -> None:
        self.tokens.append(words(text, path, lineno, self.tokenize))
        self.texts.append(text.strip())
        self.line_ids.append(line_id)

    def ask(self, task: int, text: str, answer: str | None, supporting: tuple[int, ...], path, lineno: int) -> Question:
        if not self.tokens:
            raise UserError("question with no sentence before it", path, lineno)
        for line_id in supporting:  # line ids rise through a story: a binary search of the sentences' ids
            i = bisect.bisect_left(self.line_ids, line_id)
            if i == len(self.line_ids) or self.line_ids[i] != line_id:
                raise UserError(f"supporting id {line_id} is not a sentence of this story before the question", path, lineno)
        question = question_words(text, path, lineno, self.tokenize)
        self.questions += 1
        n = len(self.tokens)
        return Question(task, Prefix(self.tokens, n), Prefix(self.texts, n), Prefix(self.line_ids, n), question,
                        text.strip(), answer, supporting, self.id, f"{path}:{lineno}")


BABI_LINE = re.compile(r"^[0-9]+ ")
MAX_LINE_ID = 10**9  # a story longer than this is not a story


def is_line_id(text: str) -> bool:
    """An ASCII number from 1 to MAX_LINE_ID ("²" and 5,000-digit numbers are not)."""
    return text.isascii() and text.isdigit() and 0 < len(text) <= 10 and 0 < int(text) <= MAX_LINE_ID


def parse_babi(lines: list[str], path, task: int = 0, answers_required: bool = True,
               tokenize: Tokenizer = tokenize) -> list[Question]:
    """The numbered format. Without ``answers_required``, a line ending in '?' is a question too."""
    questions: list[Question] = []
    story, previous_id = None, 0
    for lineno, line in enumerate(lines, 1):
        if not line.strip():
            continue
        number, _, text = line.strip().partition(" ")
        if not is_line_id(number) or not text:
            raise UserError(f"expected '<id> <sentence>', got {line.strip()[:40]!r}", path, lineno)
        line_id = int(number)
        if line_id == 1:
            story = _Story(story.id + 1 if story else 0, tokenize)
        elif line_id != previous_id + 1 or story is None:
            raise UserError(f"line id {line_id} does not follow {previous_id}", path, lineno)
        previous_id = line_id
        if "\t" not in text and (answers_required or not text.rstrip().endswith("?")):
            story.tell(text, line_id, path, lineno)
            continue
        fields = text.split("\t")
        if len(fields) > 3 or (answers_required and (len(fields) < 2 or not fields[1].strip())):
            raise UserError("expected 'question<TAB>answer<TAB>supporting ids'", path, lineno)
        support = fields[2].split() if len(fields) == 3 else []
        if not all(is_line_id(s) for s in support):
            raise UserError(f"supporting ids must be line numbers, got {fields[2][:40]!r}", path, lineno)
        answer = normalize_answer(fields[1]) if len(fields) > 1 and fields[1].strip() else None
        questions.append(story.ask(task, fields[0], answer, tuple(int(s) for s in support), path, lineno))
    if not questions:
        raise UserError("no questions in file", path)
    return questions


def parse_plain(lines: list[str], path, tokenize: Tokenizer = tokenize) -> list[Question]:
    """Plain text: a sentence per line, a line ending in '?' is a question, a blank line starts a new story."""
    questions: list[Question] = []
    story, start = _Story(0, tokenize), 0  # start: the line the current story begins on

    def check_asked(story: _Story, start: int) -> None:
        if story.tokens and not story.questions:
            raise UserError("story with no question (a question is a line ending in '?')", path, start)

    for lineno, line in enumerate(lines, 1):
        if not line.strip():
            if story.tokens:
                check_asked(story, start)
                story, start = _Story(story.id + 1, tokenize), 0
            continue
        start = start or lineno
        if line.strip().endswith("?"):
            questions.append(story.ask(0, line, None, (), path, lineno))
        else:
            story.tell(line, len(story.line_ids) + story.questions + 1, path, lineno)
    check_asked(story, start)
    return questions


FIELDS = {"story", "question", "answer", "supporting"}


def parse_json_line(line: str, path, lineno: int, answers_required: bool = True,
                    tokenize: Tokenizer = tokenize) -> Question:
    """One question from one line of the JSON-lines format; anything malformed is a UserError
    naming the file and line."""
    try:
        record = json.loads(line)
    except json.JSONDecodeError as e:
        raise UserError(f"not JSON: {e.msg} (column {e.colno})", path, lineno) from None
    except ValueError as e:  # a number of more digits than Python converts
        raise UserError(f"not JSON this reads: {str(e).split(';')[0]}", path, lineno) from None
    except RecursionError:
        raise UserError("not JSON this reads: nested too deeply", path, lineno) from None
    if not isinstance(record, dict):
        raise UserError(f"expected a JSON object, got {type(record).__name__}", path, lineno)
    unknown = sorted(record.keys() - FIELDS)
    if unknown:
        raise UserError(f"unknown field {unknown[0]!r} (fields: {', '.join(sorted(FIELDS))})", path, lineno)
    story, question, answer = record.get("story"), record.get("question"), record.get("answer")
    if not isinstance(story, list) or not story or not all(isinstance(s, str) and s.strip() for s in story):
        raise UserError("'story' must be a list of one or more non-empty strings", path, lineno)
    if not isinstance(question, str) or not question.strip():
        raise UserError("'question' must be a non-empty string", path, lineno)
    if (answers_required or answer is not None) and (not isinstance(answer, str) or not answer.strip()):
        raise UserError("'answer' must be a non-empty string", path, lineno)
    for field, texts in (("story", story), ("question", [question]), ("answer", [answer or ""])):
        if any(not text.isascii() and any("\ud800" <= c <= "\udfff" for c in text) for text in texts):
            raise UserError(f"'{field}' holds half of a UTF-16 surrogate pair (\\ud800-\\udfff): not text", path, lineno)
    supporting = record.get("supporting", [])
    if (not isinstance(supporting, list)
            or not all(isinstance(i, int) and not isinstance(i, bool) and 0 <= i < len(story) for i in supporting)):
        raise UserError(f"'supporting' must be a list of indices into 'story' (0 to {len(story) - 1})", path, lineno)
    return Question(task=1, story=tuple(words(s, path, lineno, tokenize) for s in story), sentences=tuple(s.strip() for s in story),
                    line_ids=tuple(range(1, len(story) + 1)), question=question_words(question, path, lineno, tokenize), text=question.strip(),
                    answer=None if answer is None else normalize_answer(answer), supporting=tuple(i + 1 for i in supporting), story_id=lineno,
                    source=f"{path}:{lineno}")


def parse_jsonl(lines: list[str], path, answers_required: bool = True, tokenize: Tokenizer = tokenize) -> list[Question]:
    """The JSON-lines format, a question per line with its story (see tasks/jsonl.py); blank
    lines are skipped. Without ``answers_required``, "answer" may be left out."""
    questions = [parse_json_line(line, path, n, answers_required, tokenize) for n, line in enumerate(lines, 1) if line.strip()]
    if not questions:
        raise UserError("no questions in file", path)
    return questions


def to_json(question: Question) -> dict:
    """A question as one line of the JSON-lines format (to convert another task's data)."""
    record = {"story": list(question.sentences), "question": question.text, "answer": question.answer}
    supporting = [question.line_ids.index(i) for i in question.supporting if i in question.line_ids]
    return {**record, "supporting": supporting} if supporting else record


def read_stories(raw: bytes, path, tokenize: Tokenizer = tokenize) -> list[Question]:
    """A user's stories, told apart by the first line: JSON lines ('{'), the numbered format, or
    plain text; answers optional; words split by ``tokenize`` (the task's, for a trained run)."""
    lines = decode_lines(raw, path)
    first = next((line for line in lines if line.strip()), "").strip()
    if first.startswith("{"):
        return parse_jsonl(lines, path, answers_required=False, tokenize=tokenize)
    if BABI_LINE.match(first):
        return parse_babi(lines, path, answers_required=False, tokenize=tokenize)
    return parse_plain(lines, path, tokenize)


def split_validation(questions: list[Question], fraction: float, seed: int) -> tuple[list[Question], list[Question]]:
    """Hold out ``fraction`` of the stories of each task (Sec. 4.2: 10% of the training set)."""
    stories = sorted({(q.task, q.story_id) for q in questions})
    random.Random(seed).shuffle(stories)
    held = set()
    for task in sorted({t for t, _ in stories}):
        of_task = [s for s in stories if s[0] == task]
        held.update(of_task[: min(round(fraction * len(of_task)), len(of_task) - 1)])  # one story at least trains
    return [q for q in questions if (q.task, q.story_id) not in held], [q for q in questions if (q.task, q.story_id) in held]


def longest_stories(questions: list[Question]) -> list[Sequence[tuple[str, ...]]]:
    """The questions' stories, each once: the longest story a question of it sees (they are
    `Prefix`es of one list), which holds every sentence the others do. Linear in the stories'
    length, where each question's story, the story so far, is quadratic: a story of n sentences,
    each followed by a question, is n²/2 sentences told again."""
    longest: dict[int, Sequence[tuple[str, ...]]] = {}  # by the list a story's questions share, else by story
    for q in questions:
        key = id(q.story.shared) if isinstance(q.story, Prefix) else id(q.story)
        if len(q.story) > len(longest.get(key, ())):
            longest[key] = q.story
    return list(longest.values())


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
        """Every word of the questions' stories and of the questions, and every answer."""
        answers = sorted({q.answer for q in questions})
        words = {w for story in longest_stories(questions) for sentence in story for w in sentence}
        words |= {w for q in questions for w in q.question}
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
        slots = {line_id: slot for slot, line_id in enumerate(reversed(q.line_ids[-memory_size:]))}  # the most recent first
        for line_id in q.supporting:
            if line_id in slots:
                support[n, slots[line_id]] = True
    query = torch.tensor([row(q.question) for q in questions], dtype=torch.long)
    width = max(1, max(len(s) for s in rows))
    sentences = torch.zeros(len(rows), width, dtype=torch.long)
    lengths = torch.zeros(len(rows), dtype=torch.long)
    for sentence, r in rows.items():
        sentences[r, : len(sentence)] = torch.tensor([vocab.word_ids.get(w, 0) for w in sentence], dtype=torch.long)
        lengths[r] = len(sentence)
    return Encoded(
        sentences=sentences,
        memory=memory,
        memory_size=torch.tensor([min(len(q.story), memory_size) for q in questions], dtype=torch.long),
        query=query,
        answer=torch.tensor([vocab.answer_ids.get(q.answer, -1) for q in questions], dtype=torch.long),
        task=torch.tensor([q.task for q in questions], dtype=torch.long),
        width=torch.maximum(lengths[memory].max(dim=1).values, lengths[query]),
        support=support,
        unknown_words=unknown,
    )


def metrics(counts: dict) -> dict:
    """Error in percent and mean loss from summed counts {correct, total, loss}; with the counts
    {supported, on_support (one per hop), on_support_any}, also the share (%) of questions with
    supporting facts whose most-attended sentence is one, per hop and for some hop."""
    total = counts["total"]
    figures = {"error": 100.0 * (total - counts["correct"]) / total, "loss": counts["loss"] / total}  # 0.2, not 0.20000000000000018
    if counts.get("supported"):
        figures["attention_on_support"] = [100.0 * hits / counts["supported"] for hits in counts["on_support"]]
        figures["attention_on_support_any"] = 100.0 * counts["on_support_any"] / counts["supported"]
    return figures


class QATask:
    """What a question-answering task supplies; the rest (training, eval, predict, visualize,
    sweep) is shared. A task's data may hold several numbered tasks (bAbI: 1-20), trained one
    model each or jointly; a task with one has the number 1. Subclass it and register the class
    (`tasks.register_task`, or the entry-point group ``memn2n.tasks`` from another package)."""

    kind = "qa"
    summary = "question answering"

    def tokenize(self, text: str) -> list[str]:
        return tokenize(text)

    def vocabulary(self, questions: list[Question]) -> Vocabulary:
        """The words and the answer vocabulary of a model trained on ``questions`` (its training
        split): every word seen, and every answer, each answer one entry however many words it has."""
        return Vocabulary.build(questions)

    def count(self, predicted: list[str], answers: list[str | None]) -> dict[str, float]:
        """Summed counts of the task's own from predicted answers and the true ones (None: an
        answer never seen in training), for a task whose `metrics` reports more than the shared
        figures; evaluation calls it on the questions of each numbered task and gives what it
        returns to `metrics` with the shared counts. None by default."""
        return {}

    def metrics(self, counts: dict) -> dict:
        """The figures of summed counts: the shared ones (see `metrics`) and any of `count`'s."""
        return metrics(counts)

    def resolve_data_dir(self, given: Path | None) -> Path:
        """The folder of the data: ``given`` (``--data-dir``), or where the task keeps it."""
        if given is None:
            raise ArgumentError("data_dir", f"{self.name} needs {{}}")
        if not given.is_dir():
            raise not_a(given, "data directory")
        return given

    def numbered(self) -> bool:
        """Whether the data holds several numbered tasks (bAbI's 1-20): tables and progress then
        name them by number; a task with one is named by its own name ("jsonl", not "task 1")."""
        return len(self.parse_task_ids([], "all")) > 1

    def parse_task_ids(self, values: list[str], default: str = "1") -> list[int]:
        """The numbered tasks ``--task`` names (none given: ``default``, or "all")."""
        if values:
            raise UserError(f"{self.name} has one task: leave out --task")
        return [1]

    def read(self, data_dir: Path, task_ids: list[int], split: str) -> list[Question]:
        """The questions of ``split`` ("train" or "test") of these tasks; bad input is a UserError
        naming the file and line."""
        raise NotImplementedError

    def read_validation(self, data_dir: Path, task_ids: list[int]) -> list[Question] | None:
        """Validation questions of their own, or None: then stories of "train" are held out."""
        return None

    def data_files(self, data_dir: Path, task_ids: list[int]) -> list[Path]:
        """The files the questions are read from (their checksums go into the run's config)."""
        raise NotImplementedError

    def presets(self) -> dict[str, dict[str, dict]]:
        """Named sets of sweep columns (`memn2n sweep --preset NAME`): column label -> the options
        that set it apart, e.g. {"joint": True, "hops": 1}."""
        return {}

    def random_test_story(self, task_id: int, data_dir: Path | None, rng: random.Random) -> tuple[str, str]:
        """A random story of numbered task ``task_id``'s test split, as text `predict` reads, and
        where it is from (`memn2n serve`'s button); ``data_dir`` as ``--data-dir``."""
        raise UserError(f"{self.name} has no test stories to draw from")

    def paper_figures(self, preset: str, files: dict[str, str], task_ids: list[int]) -> dict[str, dict]:
        """Published figures to print beside a preset's columns, where the data ``files`` (name:
        SHA-256, as a run records them) are the published data: label -> {"tasks": {task: error},
        "mean": error, "failed": tasks}."""
        return {}


def qa_task(name: str) -> QATask:
    """The registered question-answering task ``name``; a UserError for a task of another kind."""
    from tasks import get_task

    task = get_task(name, "qa")
    if task is None:
        raise UserError(f"{name} is not a question-answering task")
    return task
