"""A recipe per kind of task, as a library: what each command computes for question answering
(`qa`) and for language modelling (`lm`). The library (`memn2n`) and the commands call the same
function of the recipe of a task (`for_task`) or of the task a run was trained on (`for_run`);
the kind of a task is looked up here, once. Nothing here imports Typer or Rich.
"""

from __future__ import annotations

from pathlib import Path
from types import ModuleType


def for_task(name: str) -> ModuleType:
    """The recipe of the registered task ``name``: a module with load, fit, evaluate, answer,
    sweep_spec and sweep (and its kind's own views: attention, memory_positions)."""
    from memn2n_cli.recipes import lm, qa
    from tasks import get_task

    return {"qa": qa, "lm": lm}[get_task(name).kind]


def for_run(run: Path) -> ModuleType:
    """The recipe of the task a run directory was trained on."""
    from memn2n_cli.checkpoint import run_task

    return for_task(run_task(run))
