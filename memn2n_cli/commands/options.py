"""Options shared by several commands, declared once."""

from pathlib import Path
from typing import Annotated

import typer

DataDir = Annotated[Path | None, typer.Option(
    "--data-dir", help="Folder holding qaN_*_{train,test}.txt [default: $MEMN2N_DATA_DIR, else the download cache]")]
Json = Annotated[bool, typer.Option("--json", help="Print the results as one JSON object on stdout.")]
Device = Annotated[str, typer.Option(help="auto (CUDA when present), cpu, cuda, cuda:N.")]
