"""`memn2n eval RUN`: a saved run's figures on a split, re-computed from its files and the data."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from memn2n_cli.commands.app import app, command
from memn2n_cli.commands.options import DataDir, Device, Json


@app.command("eval")
@command
def evaluate(
    run: Annotated[Path, typer.Argument(help="A run directory written by `memn2n train`.")],
    split: Annotated[str, typer.Option(help="test, valid or train.")] = "test",
    data_dir: DataDir = None,
    json_output: Json = False,
    device: Device = "auto",
) -> None:
    """Evaluate a saved run: error per task, mean error and failed tasks; a language model's perplexity."""
    from memn2n_cli.commands import kinds
    from memn2n_cli.configs import check_split

    check_split(split)  # before the run is read
    kinds.for_run(run).evaluate(run, split=split, data_dir=data_dir, device=device, json_output=json_output)
