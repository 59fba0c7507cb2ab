"""`memn2n eval RUN`: the error of a saved run on a split, re-computed from its files."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from memn2n_cli.cli import app, command, stdout
from memn2n_cli.commands.options import DataDir, Device, Json
from memn2n_cli.errors import UserError


@app.command("eval")
@command
def evaluate(
    run: Annotated[Path, typer.Argument(help="A run directory written by `memn2n train`.")],
    split: Annotated[str, typer.Option(help="test, valid or train.")] = "test",
    data_dir: DataDir = None,
    json_output: Json = False,
    device: Device = "auto",
) -> None:
    """Evaluate a saved run: error per task, mean error and failed tasks."""
    from memn2n_cli.checkpoint import run_task
    from memn2n_cli.report import results_table
    from memn2n_cli.runs import SPLITS, evaluate_run
    from tasks import get_task

    if split not in SPLITS:
        raise UserError(f"--split must be one of {', '.join(SPLITS)}, not {split!r}")
    if get_task(run_task(run)).kind == "lm":
        from memn2n_cli.lm_training import evaluate_lm_run

        summary = evaluate_lm_run(run, split, data_dir)
        print(json.dumps(summary) if json_output else
              f"{split} perplexity {summary['perplexity']:.2f} over {summary['tokens']} tokens  ·  {run}")
        return
    summary = evaluate_run(run, split, data_dir, device)
    if json_output:
        print(json.dumps({"split": split, **summary}))
    else:
        stdout().print(results_table(summary, (split,)))
