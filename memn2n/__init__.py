"""memn2n as a library: train, load and ask End-To-End Memory Networks from Python.

    import memn2n

    summary = memn2n.train("babi", "runs/task1", tasks=[1])     # the paper's recipe; options by name
    run = memn2n.load("runs/task1")                              # a QARun (question answering) or LMRun
    for p in run.answer("Mary went to the kitchen.\\nWhere is Mary?"):
        print(p.answer, p.probability, p.attention)              # attention: per hop, over the sentences
    memn2n.evaluate("runs/task1", split="test")                  # as `memn2n eval --json`

The command line (`memn2n train`, `eval`, `predict`, ...) is built on the same functions; the
implementation lives in `memn2n_cli` and the tasks in `tasks`. Importing this module loads
neither Typer nor Rich; a bad argument raises UserError (ArgumentError, naming it as ``name=``)
or ConfigError, by the same rules the command line applies.
"""

from __future__ import annotations

import os
from pathlib import Path

from memn2n_cli import __version__
from memn2n_cli.configs import LMConfig, LMTrainConfig, ModelOptions, TrainConfig
from memn2n_cli.errors import ArgumentError, ConfigError, Diverged, UserError, check_text
from memn2n_cli.model import MemoryNetwork
from tasks import available_tasks

__all__ = ["train", "load", "evaluate", "answer", "sweep", "available_tasks", "MemoryNetwork", "ModelOptions",
           "TrainConfig", "LMConfig", "LMTrainConfig", "ArgumentError", "ConfigError", "Diverged", "UserError",
           "__version__"]


def train(task: str, out: str | Path, *, data_dir: str | Path | None = None, tasks: list[int | str] | None = None,
          joint: bool = False, resume: bool = False, device: str = "auto", **options) -> dict:
    """Train on a registered task (see `available_tasks()`) into the run directory ``out``, as
    `memn2n train` does, and return its figures (question answering: error per task and the mean;
    a language model: its history and perplexities).

    ``tasks``: a numbered task of the data or a list of them (bAbI: 1-20 or "all"; default 1), one model each or,
    with ``joint``, one for all. ``options``: the fields of ModelOptions and TrainConfig, or of
    LMConfig and LMTrainConfig (``dim=50, epochs=60``); the others take the paper's defaults.
    A value that cannot be trained raises ConfigError; bad data, UserError; a question-answering
    model whose training loss stops being finite, Diverged (a language model's figures say "diverged")."""
    from memn2n_cli import recipes
    from memn2n_cli.checkpoint import check_new_run

    out = _folder(out, "out")
    check_new_run(out, resume)
    return recipes.for_task(task).fit(task, tasks=_task_list(tasks), joint=joint, data_dir=_folder(data_dir, "data_dir", optional=True),
                                      out=out, resume=resume, device=device, options=options)


def _folder(value, name: str, optional: bool = False) -> Path | None:
    """``name=``'s folder as a Path (with ``optional``, None stays None): an ArgumentError for what
    names no folder, such as a loaded run (its folder is ``run.path``)."""
    if value is None and optional:
        return None
    if not isinstance(value, (str, os.PathLike)):
        raise ArgumentError(name, f"{{}} must be a folder's path (a str or Path), not a {type(value).__name__}")
    return Path(value)


def _task_list(tasks) -> list[str]:
    """``tasks=`` as the command line's --task values: one task (12, "12", "all") or a list of them
    ("12" is task 12, not tasks 1 and 2)."""
    if tasks is None:
        return []
    listed = [tasks] if isinstance(tasks, (str, int)) else tasks
    if not isinstance(listed, (list, tuple)) or not all(isinstance(t, (str, int)) and not isinstance(t, bool) for t in listed):
        raise ArgumentError("tasks", f"{{}} must be a task number, \"all\", or a list of them, not {tasks!r}")
    return [str(t) for t in listed]


def load(path: str | Path, task: int | None = None):
    """A trained run, ready to use: a `QARun` (``.answer(story)``, ``.evaluate()``) or an `LMRun`
    (``.continue_text(prompt)``, ``.evaluate()``), with ``.model`` (a torch module) and ``.config``.
    ``task``: for a run of one model per task, whose model to load."""
    from memn2n_cli import recipes

    path = _folder(path, "path")
    return recipes.for_run(path).load(path, task)


def evaluate(run: str | Path, split: str = "test", *, data_dir: str | Path | None = None, device: str = "auto") -> dict:
    """Re-compute a run's figures on ``split`` ("train", "valid" or "test") from its files and the
    data it was trained on (or ``data_dir``), as `memn2n eval --json` prints them."""
    from memn2n_cli import recipes
    from memn2n_cli.configs import check_split

    check_split(split)  # before the run is read
    run = _folder(run, "run")
    return recipes.for_run(run).evaluate(run, split=split, device=device, data_dir=_folder(data_dir, "data_dir", optional=True))


def answer(run: str | Path, story: str, *, task: int | None = None, top_k: int | None = None,
           next_words: int | None = None, device: str = "auto"):
    """What `memn2n predict` computes for ``story`` (text as it reads a story file): a
    question-answering run's predictions (answer, probability, the ``top_k`` best answers,
    attention per hop), or a language model's ``next_words`` most likely next words after the
    prompt ({prompt, next}); left out, each is `predict`'s default. ``task`` and ``top_k`` are
    options of question answering, ``next_words`` of a language model: an ArgumentError for a run
    of the other kind."""
    from memn2n_cli import recipes

    run = _folder(run, "run")
    check_text(story, "story")
    return recipes.for_run(run).answer(run, raw=story.encode(), name="<story>", model_task=task, top_k=top_k,
                                       next_words=next_words, device=device)


def sweep(task: str, out: str | Path, *, grid: dict[str, list] | None = None, tasks: list[int | str] | None = None,
          restarts: int | None = None, joint: bool = False, preset: str | None = None, columns: list[str] | None = None,
          select: str | None = None, seed: int = 0, backend: str = "local", workers: int = 1,
          data_dir: str | Path | None = None, device: str = "auto", on_trial=None, **options) -> dict:
    """Best-of-N restarts over a grid, as `memn2n sweep` (Table 1 with ``preset="table1"``, Table 2
    with ``preset="table2"``); the summary, also written to ``out``/results.*. ``grid``: option ->
    values, every combination a configuration; ``options``: options fixed for all of them.
    ``on_trial``: called after each finished trial; ``device``: as for `train` (on a GPU host, one
    worker per GPU)."""
    from memn2n_cli import recipes
    from memn2n_cli.recipes import lm

    out = _folder(out, "out")  # before the data is looked for (or downloaded)
    recipe = recipes.for_task(task)
    spec = recipe.sweep_spec(task, tasks=_task_list(tasks), grid=grid or {}, fixed={k: [v] for k, v in options.items()},
                             restarts=restarts, joint=joint, preset=preset, column=list(columns or []), select=select,
                             seed=seed, data_dir=_folder(data_dir, "data_dir", optional=True))
    # A language model's preset trains the columns named now (its cells); bAbI's spec holds them.
    now = {"only": list(columns)} if recipe is lm and columns else {}
    return recipe.sweep(spec, out, backend=backend, workers=workers, on_trial=on_trial, device=device, **now)
