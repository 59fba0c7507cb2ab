"""The task registry: every dataset memn2n trains on is a plugin registered here.

A task owns what is specific to its data: how to find and read it, its tokenizer, its
vocabularies and its metrics. Built-in tasks are registered by the explicit imports at the
bottom of this file; third-party tasks register through the entry-point group
``memn2n.tasks`` (each entry point names a task class, which is registered on first use).

Metrics are computed from *summed counts* (correct answers, questions, summed negative
log-likelihood, tokens) so that they add up across batches, processes and tasks.
"""

from __future__ import annotations

from importlib.metadata import entry_points
from pathlib import Path
from typing import Protocol

from memn2n_cli.errors import UserError

ENTRY_POINT_GROUP = "memn2n.tasks"


class Task(Protocol):
    """What the commands need from every task, whatever its kind."""

    name: str  # the registry key, as typed on the command line (`memn2n train NAME`)
    summary: str  # one line for `memn2n tasks`
    kind: str  # a key of KINDS: "qa" (question answering) or "lm" (language modelling)

    def tokenize(self, text: str) -> list[str]:
        """Split one sentence into the tokens the vocabulary is built from."""
        ...

    def metrics(self, counts: dict[str, float]) -> dict[str, float]:
        """Turn summed counts into the figures reported to the user."""
        ...

    def presets(self) -> dict[str, dict[str, dict]]:
        """Named sets of sweep configurations (`memn2n sweep --preset NAME`)."""
        ...


class QuestionAnswering(Task, Protocol):
    """A question-answering task (kind "qa"): every method the commands and the library call on
    one; `tasks.qa.QATask` implements them all, so a plugin subclasses it and overrides some."""

    def vocabulary(self, questions: list) -> object: ...
    def count(self, predicted: list[str], answers: list[str | None]) -> dict[str, float]: ...
    def resolve_data_dir(self, given: Path | None) -> Path: ...
    def parse_task_ids(self, values: list[str], default: str = "1") -> list[int]: ...
    def read(self, data_dir: Path, task_ids: list[int], split: str) -> list: ...
    def read_validation(self, data_dir: Path, task_ids: list[int]) -> list | None: ...
    def data_files(self, data_dir: Path, task_ids: list[int]) -> list[Path]: ...
    def random_test_story(self, task_id: int, data_dir: Path | None, rng) -> tuple[str, str]: ...
    def paper_figures(self, preset: str, files: dict[str, str], task_ids: list[int]) -> dict[str, dict]: ...


class LanguageModel(Task, Protocol):
    """A language-modelling task (kind "lm"); `tasks.lm.LanguageModelTask` implements it."""

    TABLE_2: dict  # the paper's Table 2 figures for this corpus, by (hidden, hops, memory); may be empty

    def load(self, data_dir: Path): ...

    def data_files(self, data_dir: Path) -> list[Path]: ...

    def paper_table(self, files: dict[str, str]) -> dict: ...


KINDS: dict[str, type] = {"qa": QuestionAnswering, "lm": LanguageModel}


def missing_members(task: object, interface: type) -> list[str]:
    """The attributes and methods of ``interface`` that ``task`` lacks."""
    members = set()
    for base in interface.__mro__:
        if base in (Protocol, object) or not getattr(base, "_is_protocol", False):
            continue
        members |= {n for n in vars(base) if not n.startswith("_")} | set(getattr(base, "__annotations__", {}))
    return sorted(m for m in members if not hasattr(task, m))


_REGISTRY: dict[str, type] = {}


def register_task(name: str):
    """Class decorator: ``@register_task("babi")``. Refuses duplicates, a kind the commands do not
    know, and a class that lacks part of its kind's interface, each with a message."""

    def decorate(cls: type) -> type:
        if name in _REGISTRY:
            raise ValueError(f"task {name!r} is already registered by {_REGISTRY[name].__qualname__}")
        if not isinstance(cls, type):
            raise TypeError(f"{cls!r} is not a class")
        kind = getattr(cls, "kind", None)
        if kind not in KINDS:
            raise TypeError(f"task {name!r} ({cls.__qualname__}) has kind {kind!r}; the commands know "
                            f"{' and '.join(map(repr, KINDS))} (subclass tasks.qa.QATask or tasks.lm.LanguageModelTask)")
        cls.name = name
        missing = missing_members(cls(), KINDS[kind])
        if missing:
            del cls.name
            raise TypeError(f"task {name!r} ({cls.__qualname__}) lacks {', '.join(missing)} of the {kind!r} interface "
                            f"(tasks.{KINDS[kind].__name__})")
        _REGISTRY[name] = cls
        return cls

    return decorate


def _load_entry_points() -> None:
    for entry in entry_points(group=ENTRY_POINT_GROUP):
        if entry.name not in _REGISTRY:
            cls = entry.load()
            if entry.name not in _REGISTRY:  # the import may have registered it already
                register_task(entry.name)(cls)


def available_tasks() -> dict[str, type]:
    """Every registered task, built-in and from installed plugins, by name."""
    _load_entry_points()
    return dict(sorted(_REGISTRY.items()))


def get_task(name: str, kind: str | None = None) -> Task | None:
    """The registered task ``name`` (a UserError when there is none); with ``kind``, None when the
    task is of another kind. The one place where a task's kind is compared."""
    tasks = available_tasks()
    if name not in tasks:
        raise UserError(f"unknown task {name!r}; known tasks: {', '.join(tasks)}")
    task = tasks[name]()
    return task if kind is None or task.kind == kind else None


# Built-in tasks, registered by explicit import.
from tasks import babi, lm  # noqa: E402,F401
