"""Which module renders a task's results on the command line: the one of its kind
(qa_output or lm_output), found through the library's recipe of that kind."""

from __future__ import annotations

from pathlib import Path
from types import ModuleType


def for_task(name: str) -> ModuleType:
    from memn2n_cli import recipes
    from memn2n_cli.commands import lm_output, qa_output

    return {qa_output.recipe: qa_output, lm_output.recipe: lm_output}[recipes.for_task(name)]


def for_run(run: Path) -> ModuleType:
    from memn2n_cli.checkpoint import run_task

    return for_task(run_task(run))
