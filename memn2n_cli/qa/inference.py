"""Answers and hop attention for questions a user asks a trained model (`predict`, `visualize`,
and `QARun`, the library's handle on a trained question-answering model)."""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from memn2n_cli.qa.batches import make_batch
from memn2n_cli.checkpoint import (BUNDLED_RUN, CONFIG_FILE, RUNS_DIR, VOCAB_FILE, is_finished, load_model, model_dirs,
                                   read_json, run_data_dir, run_task)
from memn2n_cli.configs import EVAL_BATCH, TOP_K
from memn2n_cli.devices import resolve_device
from memn2n_cli.errors import ArgumentError, UserError, not_a
from memn2n_cli.model import MemN2N
from tasks import get_task
from tasks.qa import QATask, Question, Vocabulary, encode, qa_task, read_stories

log = logging.getLogger("memn2n")
MAX_TOP_K = 100  # alternatives listed per question: more is no longer an answer's alternatives


def check_top_k(top_k) -> None:
    """An ArgumentError unless ``top_k`` is a whole number from 1 to MAX_TOP_K (`predict --top-k`,
    `run.answer(top_k=)`, the API's "top_k")."""
    if not isinstance(top_k, int) or isinstance(top_k, bool) or not 1 <= top_k <= MAX_TOP_K:
        raise ArgumentError("top_k", f"{{}} must be a whole number from 1 to {MAX_TOP_K}, not {top_k!r}")


@dataclass
class Prediction:
    question: Question
    answer: str
    probability: float
    top: list[tuple[str, float]]  # the top-k answers with their probabilities, best first
    memory: list[int]  # indices into question.sentences of the sentences in memory, oldest first
    attention: list[list[float]]  # per hop, p over the memory sentences (same order); empty slots take the rest

    @property
    def correct(self) -> bool | None:
        return None if self.question.answer is None else self.answer == self.question.answer

    def to_json(self) -> dict:
        q = self.question
        record = {"question": q.text, "answer": self.answer, "probability": self.probability,
                  "top_k": [{"answer": a, "probability": p} for a, p in self.top],
                  "story": [q.sentences[i] for i in self.memory],
                  "attention": self.attention, "source": q.source}
        if q.answer is not None:
            record.update(expected=q.answer, correct=self.correct)
        if q.supporting:  # indices into "story" (as in the JSON-lines format) of the facts still in memory
            record.update(supporting=[row for row, i in enumerate(self.memory) if q.line_ids[i] in q.supporting])
        return record


def runs_under(roots: Sequence[Path] = (RUNS_DIR,), qa_only: bool = False) -> list[Path]:
    """The run directories under each of ``roots``, the most recently written first (a run of one
    model per task is one run); with ``qa_only``, only question-answering runs, for `serve` (a run
    whose task cannot be read is left out here, quietly: serve's check of each model it offers says
    so once; one broken run should not stop the others)."""
    written: dict[Path, float] = {}
    for root in roots:
        for config in sorted(root.glob(f"*/{CONFIG_FILE}")) + sorted(root.glob(f"*/*/{CONFIG_FILE}")):
            run = config.parent if config.parent.parent == root else config.parent.parent
            written[run] = max(written.get(run, 0.0), config.stat().st_mtime)
    runs = sorted(written, key=written.__getitem__, reverse=True)
    return [run for run in runs if _answers_questions(run)] if qa_only else runs


def _answers_questions(run: Path) -> bool:
    try:
        return is_qa_run(run)
    except UserError:
        return False


def is_qa_run(run: Path) -> bool:
    """Whether ``run`` was trained on a question-answering task (a UserError when it cannot be read)."""
    return get_task(run_task(run), "qa") is not None


def default_run(roots: Sequence[Path] = (RUNS_DIR,), runs: list[Path] | None = None,
                what: str = "run", task: int | None = None,
                per_task: str = "one model per task: pass --task N to use one") -> tuple[Path, str]:
    """The run to use when none is named, and how to say so: the first of ``runs`` (by default
    every run under ``roots``, the most recently written first) that is finished and, unless a
    ``task`` picks one of its models, holds one model (a run of one model per task is named and
    passed over: its task-1 model would answer every kind of question), else the bundled joint
    bAbI model. ``what`` names the kind of run ``runs`` holds, for that note; ``per_task`` says
    why a run of one model per task was passed over, and how to use it."""
    runs = runs_under(roots) if runs is None else runs
    passed = {run: "not finished, so not used unless named" for run in runs if not is_finished(run)}
    if task is None:
        passed.update({run: per_task for run in runs
                       if run not in passed and len(model_dirs(run)) > 1})
    left_out = "".join(f" ({', '.join(str(run) for run in passed if passed[run] == why)}: {why})"
                       for why in dict.fromkeys(passed.values()))
    runs = [run for run in runs if run not in passed]
    if runs:
        return runs[0], f"using {runs[0]}{left_out}"
    folders = " or ".join(str(root) if root.is_absolute() else f"./{root}" for root in roots)
    if (BUNDLED_RUN / CONFIG_FILE).is_file():
        return BUNDLED_RUN, (f"using the joint bAbI model that comes with memn2n (no {what} under {folders}; "
                             f"train your own with `memn2n train`, or pass --checkpoint RUN){left_out}")
    raise UserError(f"no trained run under {folders}; train one (`memn2n train TASK`) or pass --checkpoint RUN")


def choose_model(run: Path, task: int | None) -> tuple[MemN2N, dict, Vocabulary, Path]:
    """The model of ``run`` that answers: its only one, or the one trained on ``task`` (a number,
    or its digits: `memn2n.load(run, task="3")`)."""
    if isinstance(task, str) and task.isascii() and task.isdigit():
        task = int(task)
    if task is not None and (not isinstance(task, int) or isinstance(task, bool)):
        raise ArgumentError("task", f"{{}} must be a task number, not {task!r}")
    directories = model_dirs(run)
    if len(directories) > 1:
        if task is None:
            names = ", ".join(d.name for d in directories)
            raise UserError(f"holds one model per task ({names}): pass --task N, or train with --joint", run)
        directories = [d for d in directories if d.name == f"qa{task}"]
        if not directories:
            raise UserError(f"has no model for task {task}", run)
    model, config, vocab = load_model(directories[0])
    if task is not None and task not in config["tasks"]:
        raise UserError(f"holds a model of task {', '.join(map(str, config['tasks']))}, not of task {task}", run)
    return model, config, vocab, directories[0]


def predictions(model: MemN2N, vocab: Vocabulary, questions: list[Question], top_k: int = TOP_K,
                batch_size: int = EVAL_BATCH) -> Iterator[Prediction]:
    """Answer each question from the sentences before it in its story, as in training, on the
    model's device, one batch at a time as they are computed: `memn2n predict` prints a story of
    many questions as it answers it, holding one batch's attention, not every answer's. The
    warnings on the questions as a whole come before the first answer."""
    memory_size = model.config.memory_size
    data = encode(questions, vocab, memory_size)
    sizes = data.memory_size.tolist()
    data = data.to(model.embedding.device)
    if data.unknown_words:
        words = ", ".join(sorted(data.unknown_words))
        log.warning("words this model never saw, read as the nil word: %s", words)
        if bundled_knows(vocab, data.unknown_words):
            log.warning("the joint bAbI model that comes with memn2n knows them all: ask it with -c bundled "
                        "(in Python, memn2n.load(\"bundled\"))")
    longer = sum(len(q.story) > memory_size for q in questions)
    if longer:
        log.warning("%d question(s) come after more sentences than the model's memory holds (%d): "
                    "only the most recent %d were used", longer, memory_size, memory_size)
    model.eval()
    for index in torch.arange(len(data)).split(batch_size):
        with torch.no_grad():
            out = model(**make_batch(data, index.to(data.answer.device)))
        probabilities = torch.softmax(out.logits, -1)
        best = probabilities.topk(min(top_k, probabilities.shape[-1]), -1)
        values, indices, attentions = best.values.tolist(), best.indices.tolist(), out.attention.cpu()  # to the host once
        for row, n in enumerate(index.tolist()):
            q, size = questions[n], sizes[n]
            top = [(vocab.answers[i], p) for p, i in zip(values[row], indices[row])]
            # Slot 0 is the most recent sentence: flip the filled slots to story order.
            attention = attentions[row, :, :size].flip(-1).tolist()
            yield Prediction(q, top[0][0], top[0][1], top, list(range(len(q.story) - size, len(q.story))), attention)


def bundled_knows(vocab: Vocabulary, words) -> bool:
    """Whether the bundled model, not the one of ``vocab``, knows every one of ``words``: then it,
    trained on all 20 bAbI tasks, is likely the model to ask a story a task-1 model cannot read."""
    try:
        known = read_json(BUNDLED_RUN / VOCAB_FILE).get("words")
    except UserError:  # a checkout or package without it
        return False
    return isinstance(known, list) and vocab.words != known and set(words) <= set(known)


def read_story_input(story: str) -> tuple[bytes, str]:
    """The bytes of a story file, or of standard input for '-', with the name to use in messages."""
    if story == "-":
        return sys.stdin.buffer.read(), "<stdin>"
    path = Path(story)
    if not path.is_file():
        raise not_a(path, "story file")
    return path.read_bytes(), str(path)


@dataclass
class QARun:
    """A trained question-answering model, as a notebook uses it: ``memn2n.load(path)``, then
    ``run.answer(story)``. ``config`` is the run's config.json; ``vocab`` its words and answers."""

    path: Path
    model: MemN2N
    config: dict
    vocab: Vocabulary

    @classmethod
    def load(cls, path: str | Path, task: int | None = None, device: str = "auto") -> QARun:
        """The model of a run directory, on ``device``: its only one, or (a run of one model per
        task) ``task``'s."""
        torch_device = resolve_device(device)
        model, config, vocab, directory = choose_model(Path(path), task)
        return cls(directory, model.to(torch_device), config, vocab)

    @property
    def task(self) -> QATask:
        """The registered task the model was trained on: its tokenizer reads the stories asked."""
        return qa_task(self.config["task"])

    def read(self, raw: bytes, name: str) -> list[Question]:
        """The questions of a story file's bytes (see `answer`), tokenized as the task tokenizes."""
        return read_stories(raw, name, self.task.tokenize)

    def data_dir(self, given: Path | None = None) -> Path:
        """The folder of the run's data: ``given``, else where it was trained, else the task's own."""
        return self.task.resolve_data_dir(run_data_dir(self.config, given))

    def answer(self, story: str | list[Question], top_k: int = TOP_K) -> list[Prediction]:
        """Answer every question of ``story``, text as `memn2n predict` reads it (plain sentences
        with questions ending in '?', the numbered format, or JSON lines), or questions already
        read. Each prediction has the answer, its probability, the ``top_k`` answers and the
        attention of every hop over the sentences in memory."""
        return list(self.answers(story, top_k))

    def answers(self, story: str | list[Question], top_k: int = TOP_K) -> Iterator[Prediction]:
        """`answer`'s predictions one batch at a time, as they are computed (the story and
        ``top_k`` are checked at once, not when the first is asked for)."""
        check_top_k(top_k)
        questions = (self.read(story.encode(), "<story>") if isinstance(story, str)
                     else list(story) if isinstance(story, Sequence) else None)
        if not questions or not all(isinstance(q, Question) for q in questions):
            raise ArgumentError("story", "{} must be a story's text or a list of one or more Questions")
        return predictions(self.model, self.vocab, questions, top_k)

    def evaluate(self, split: str = "test", data_dir: str | Path | None = None, device: str = "auto") -> dict:
        """Error per task on ``split`` of the data it was trained on (or ``data_dir``), as `memn2n eval`."""
        from memn2n_cli.qa.runs import evaluate_run

        return evaluate_run(self.path, split, None if data_dir is None else Path(data_dir), device)
