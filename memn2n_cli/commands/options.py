"""Options shared by several commands, declared once."""

from pathlib import Path
from typing import Annotated

import typer

DataDir = Annotated[Path | None, typer.Option(
    "--data-dir", help="Folder holding qaN_*_{train,test}.txt [default: $MEMN2N_DATA_DIR, else the download cache]")]
Json = Annotated[bool, typer.Option("--json", help="Print the results as one JSON object on stdout.")]
Device = Annotated[str, typer.Option(help="auto (CUDA when present), cpu, cuda, cuda:N.")]
Checkpoint = Annotated[Path | None, typer.Option(
    "--checkpoint", "-c", help="Run directory [default: the newest under ./checkpoints].")]
ModelTask = Annotated[int | None, typer.Option(
    "--task", help="For a run of one model per task: the task whose model answers.")]
StoryFile = Annotated[str, typer.Argument(
    metavar="STORY", help="Story file, bAbI format (answers optional) or plain text (a line ending in '?' "
                          "is a question, a blank line starts a new story); - reads stdin.")]
