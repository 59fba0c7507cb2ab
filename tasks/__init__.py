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
from typing import Protocol, runtime_checkable

from memn2n_cli.errors import UserError

ENTRY_POINT_GROUP = "memn2n.tasks"


@runtime_checkable
class Task(Protocol):
    """What the commands need from a task, whether question answering or language modelling."""

    name: str  # the registry key, as typed on the command line (`memn2n train NAME`)
    summary: str  # one line for `memn2n tasks`
    kind: str  # "qa" (question answering) or "lm" (language modelling)

    def tokenize(self, text: str) -> list[str]:
        """Split one sentence into the tokens the vocabulary is built from."""
        ...

    def metrics(self, counts: dict[str, float]) -> dict[str, float]:
        """Turn summed counts into the figures reported to the user."""
        ...


_REGISTRY: dict[str, type] = {}


def register_task(name: str):
    """Class decorator: ``@register_task("babi")``. Refuses duplicates and non-tasks."""

    def decorate(cls: type) -> type:
        if name in _REGISTRY:
            raise ValueError(f"task {name!r} is already registered by {_REGISTRY[name].__qualname__}")
        if not isinstance(cls, type):
            raise TypeError(f"{cls!r} is not a class")
        cls.name = name
        if not isinstance(cls(), Task):
            del cls.name
            raise TypeError(f"{cls!r} does not implement the Task interface (tasks.Task)")
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
