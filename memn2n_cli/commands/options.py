"""Options shared by several commands, declared once."""

from pathlib import Path
from typing import Annotated

import typer

from memn2n_cli.configs import DEVICES
from memn2n_cli.errors import FLAGS

DataDir = Annotated[Path | None, typer.Option(
    "--data-dir", help="The task's data folder (bAbI: qaN_*_{train,test}.txt, default $MEMN2N_DATA_DIR, else the "
                       "download cache; jsonl: train.jsonl and test.jsonl; ptb: ptb.{train,valid,test}.txt).")]
Json = Annotated[bool, typer.Option("--json", help="Print the results as one JSON object on stdout.")]
Device = Annotated[str, typer.Option(help=f"{DEVICES} (auto: CUDA when present, else the CPU).")]
Checkpoint = Annotated[Path | None, typer.Option(
    "--checkpoint", "-c",
    help="Run directory. [default: the newest under ./checkpoints, else the model that comes with memn2n]")]
ModelTask = Annotated[int | None, typer.Option(
    FLAGS["model_task"], help="For a run of one model per task: the task whose model answers.")]
StoryFile = Annotated[str, typer.Argument(
    metavar="STORY", help="Story file: plain text (a line ending in '?' is a question, a blank line starts a new "
                          "story), the numbered bAbI format or JSON lines, answers optional; - reads stdin.")]
