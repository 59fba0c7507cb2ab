"""`memn2n data download TASK`: fetch a task's data into the cache and check it (a task with a
``download`` method); `memn2n data generate TASK`: write it with a built-in simulator, offline
(a task with a ``generate`` method, and its default sizes as ``GENERATED_SIZES``, else --train and
--test are given: bAbI, and a stand-in for the Penn Treebank made of its sentences)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from memn2n_cli.commands.app import command, data_app
from memn2n_cli.errors import UserError


@data_app.command()
@command
def download(
    name: Annotated[str, typer.Argument(metavar="TASK", help="A task with a download: babi, ptb or text8.")],
    dest: Annotated[Path | None, typer.Option(help="Where to unpack. [default: the cache, ~/.cache/memn2n/NAME]")] = None,
    url: Annotated[str | None, typer.Option(help="Archive to fetch; for ptb, the folder URL holding "
                                                 "ptb.{train,valid,test}.txt. [default: the upstream one]")] = None,
) -> None:
    """Download a dataset, verify it against known SHA-256 sums and unpack it; prints its folder."""
    from memn2n_cli.download import DownloadFailed

    task = _task_with(name, "download", "download")
    try:
        target = task.download(dest, url)
    except DownloadFailed as e:
        if not hasattr(task, "generate"):
            raise
        raise UserError(f"{e.message}; offline, `memn2n data generate {name}` writes a stand-in", e.path) from None
    print(f"verified and unpacked into {target}", file=sys.stderr)
    print(target)


@data_app.command()
@command
def generate(
    name: Annotated[str, typer.Argument(metavar="TASK", help="A task with a simulator: babi, or ptb (a stand-in "
                                                              "made of the bAbI simulator's sentences).")],
    out: Annotated[Path | None, typer.Option(help="Folder to write the files into (babi: qaN_NAME_{train,test}.txt; "
                                                  "ptb: ptb.{train,valid,test}.txt). [default: the task's own, "
                                                  "where every command finds it: ~/.cache/memn2n/babi/generated/en, "
                                                  "~/.cache/memn2n/ptb/generated]")] = None,
    task: Annotated[list[str] | None, typer.Option("--task", "-t", help=(
        "bAbI task number, repeatable, or 'all' (ptb: the tasks whose stories it tells). [default: all]"))] = None,
    train: Annotated[int | None, typer.Option(min=1, help=(
        "Questions in each training file (babi), lines of ptb.train.txt (ptb). [default: the task's own: "
        "babi as upstream's 1k set; ptb a small corpus, its GENERATED.md says how small]"))] = None,
    test: Annotated[int | None, typer.Option(min=1, help=(
        "Questions in each test file (babi), lines of ptb.valid.txt and of ptb.test.txt (ptb). [default: the "
        "task's own, as for --train]"))] = None,
    seed: Annotated[int, typer.Option(help="The same seed writes the same bytes.")] = 0,
) -> None:
    """Simulate a task's data and write it in its files' format (no network needed); prints the folder."""
    simulated = _task_with(name, "generate", "simulator")
    defaults = getattr(simulated, "GENERATED_SIZES", (None, None))
    train, test = (given or default for given, default in zip((train, test), defaults))
    if not (train and test):
        raise UserError(f"{name!r} has no default sizes: pass --train and --test")
    out = out or simulated.generated_data_dir()
    if out.exists() and not out.is_dir():
        raise UserError("exists and is not a folder", out)
    out.mkdir(parents=True, exist_ok=True)
    simulated.generate(out, task or [], train, test, seed)
    print(f"generated {name} (seed {seed}) into {out}", file=sys.stderr)
    print(out)


def _task_with(name: str, method: str, what: str):
    """The registered task ``name``, if it has ``method`` (a ``what``); else a UserError naming those that do."""
    from tasks import available_tasks, get_task

    task = get_task(name)
    if not hasattr(task, method):
        having = [n for n, cls in available_tasks().items() if hasattr(cls, method)]
        raise UserError(f"no {what} for {name!r}; available: {', '.join(having)}")
    return task
