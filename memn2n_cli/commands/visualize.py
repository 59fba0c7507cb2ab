"""`memn2n visualize --hops`: where each hop of a trained model looks, as in the paper's Figure 2."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from memn2n_cli.commands.app import app, command
from memn2n_cli.commands.options import Checkpoint, DataDir, Device, ModelTask

STORY_HELP = "Story file (as for predict), - for stdin; without it, stories of the run's test split."


@app.command()
@command
def visualize(
    story: Annotated[str | None, typer.Argument(metavar="[STORY]", help=STORY_HELP)] = None,
    checkpoint: Checkpoint = None,
    hops: Annotated[bool, typer.Option("--hops", help="Question-answering runs: attention of every hop over the story's sentences (Figure 2).")] = False,
    memory_positions: Annotated[bool, typer.Option("--memory-positions", help="Language-model runs: average attention of each memory position per hop over the test set (Figure 3).")] = False,
    task: ModelTask = None,
    sample: Annotated[int, typer.Option(min=1, help="Test questions to show when no STORY is given.")] = 3,
    seed: Annotated[int, typer.Option(help="Which test stories are sampled.")] = 0,
    errors: Annotated[bool, typer.Option("--errors", help="Sample only questions the model gets wrong.")] = False,
    data_dir: DataDir = None,
    out: Annotated[Path | None, typer.Option(help="Also save the view: FILE.svg or FILE.html (--hops), FILE.png or FILE.svg (--memory-positions).")] = None,
    device: Device = "auto",
) -> None:
    """Where attention goes: Figure 2 (--hops, question-answering runs) or Figure 3 (--memory-positions, language models)."""
    from memn2n_cli.commands import kinds
    from memn2n_cli.qa.inference import default_run

    if checkpoint is None:
        checkpoint, note = default_run(task=task)
        print(note, file=sys.stderr)
    run = Path(checkpoint)
    kinds.for_run(run).visualize(run, story=story, hops=hops, memory_positions=memory_positions, model_task=task,
                                 sample=sample, seed=seed, errors=errors, data_dir=data_dir, out=out, device=device)
