"""memn2n as a library: train, load and ask End-To-End Memory Networks from Python.

    import memn2n

    summary = memn2n.train("babi", "runs/task1", tasks=[1])     # the paper's recipe; options by name
    run = memn2n.load("runs/task1")                              # a QARun (question answering) or LMRun
    for p in run.answer("Mary went to the kitchen.\\nWhere is Mary?"):
        print(p.answer, p.probability, p.attention)              # attention: per hop, over the sentences

The command line (`memn2n train`, `eval`, `predict`, ...) is built on the same functions; the
implementation lives in `memn2n_cli` and the tasks in `tasks`.
"""

from __future__ import annotations

from pathlib import Path

from memn2n_cli import __version__
from memn2n_cli.configs import LMConfig, LMTrainConfig, ModelOptions, TrainConfig
from memn2n_cli.errors import ConfigError, UserError
from tasks import available_tasks

__all__ = ["train", "load", "available_tasks", "ModelOptions", "TrainConfig", "LMConfig", "LMTrainConfig",
           "ConfigError", "UserError", "__version__"]


def train(task: str, out: str | Path, *, data_dir: str | Path | None = None, tasks: list[int | str] | None = None,
          joint: bool = False, resume: bool = False, device: str = "auto", **options) -> dict:
    """Train on a registered task (see `available_tasks()`) into the run directory ``out``, as
    `memn2n train` does, and return its figures (question answering: error per task and the mean;
    a language model: its history and perplexities).

    ``tasks``: numbered tasks of the data (bAbI: 1-20 or "all"; default 1), one model each or,
    with ``joint``, one for all. ``options``: the fields of ModelOptions and TrainConfig, or of
    LMConfig and LMTrainConfig (``dim=50, epochs=60``); the others take the paper's defaults.
    A value that cannot be trained raises ConfigError; bad data, UserError."""
    from memn2n_cli import recipes
    from memn2n_cli.checkpoint import check_new_run

    out = Path(out)
    check_new_run(out, resume)
    return recipes.for_task(task).fit(task, tasks=[str(t) for t in tasks or []], joint=joint,
                                      data_dir=None if data_dir is None else Path(data_dir), out=out, resume=resume,
                                      device=device, options=options)


def load(path: str | Path, task: int | None = None):
    """A trained run, ready to use: a `QARun` (``.answer(story)``, ``.evaluate()``) or an `LMRun`
    (``.continue_text(prompt)``, ``.evaluate()``), with ``.model`` (a torch module) and ``.config``.
    ``task``: for a run of one model per task, whose model to load."""
    from memn2n_cli import recipes

    return recipes.for_run(Path(path)).load(Path(path), task)
