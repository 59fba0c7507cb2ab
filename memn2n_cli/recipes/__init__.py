"""A recipe per kind of task: what each command does for question answering (`qa`) and for
language modelling (`lm`). A command parses its options and calls the same function of the
recipe of its task (`for_task`) or of the task its run was trained on (`for_run`); the kind of a
task is looked up here, once.
"""

from __future__ import annotations

from pathlib import Path
from types import ModuleType


def for_task(name: str) -> ModuleType:
    """The recipe of the registered task ``name``: a module with train, evaluate, predict,
    visualize and sweep."""
    from memn2n_cli.recipes import lm, qa
    from tasks import get_task

    return {"qa": qa, "lm": lm}[get_task(name).kind]


def for_run(run: Path) -> ModuleType:
    """The recipe of the task a run directory was trained on."""
    from memn2n_cli.checkpoint import run_task

    return for_task(run_task(run))
