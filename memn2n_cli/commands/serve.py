"""`memn2n serve`: a local web page to ask a trained question-answering model, and a JSON API."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from memn2n_cli.commands.app import app, command
from memn2n_cli.commands.options import Checkpoint, DataDir, Device
from memn2n_cli.errors import UserError

EXTRA = ("starlette", "uvicorn")  # the `serve` extra in pyproject.toml


@app.command()
@command
def serve(
    checkpoint: Checkpoint = None,
    host: Annotated[str, typer.Option(help="Address to listen on; 0.0.0.0 opens the page to the network.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=0, max=65535, help="Port to listen on; 0 picks a free one.")] = 8000,
    data_dir: DataDir = None,
    device: Device = "auto",
    runs: Annotated[list[Path] | None, typer.Option(
        "--runs", help="A folder of runs to offer; repeat for several. [default: ./checkpoints]")] = None,
) -> None:
    """A local web page to ask a question-answering run: answers, probabilities and Figure 2.

    Type or paste a story (as `predict` reads a file) and see each question's answer, its top-k and
    the attention of every hop over the story's sentences, with the runs under ./checkpoints (or the
    folders of --runs) and the bundled model to choose from; a run finished while it serves is
    offered too. Beside the page a JSON API: POST /api/predict answers as `predict --json`, GET
    /api/runs lists the runs. --data-dir: where the random test stories come from (default: the
    folder the run was trained on, else $MEMN2N_DATA_DIR or the download cache, else memn2n's bAbI
    simulator)."""
    try:
        from memn2n_cli.qa import web
    except ModuleNotFoundError as e:
        if (e.name or "").split(".")[0] not in EXTRA:
            raise
        raise UserError(f"`memn2n serve` needs {e.name.split('.')[0]}: pip install 'memn2n[serve]'") from None
    web.serve(checkpoint, data_dir, host, port, device, runs)
