"""`memn2n predict STORY`: answer the questions of a story with a trained model."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from memn2n_cli.commands.app import app, command
from memn2n_cli.commands.options import Checkpoint, Device, ModelTask, StoryFile
from memn2n_cli.configs import NEXT_WORDS, TOP_K
from memn2n_cli.errors import FLAGS


@app.command("predict")
@command
def predict_command(
    story: StoryFile,
    checkpoint: Checkpoint = None,
    task: ModelTask = None,
    top_k: Annotated[int | None, typer.Option(help="Question-answering runs: alternatives listed with --json. "
                                                   f"[default: {TOP_K}]")] = None,
    next_words: Annotated[int | None, typer.Option(FLAGS["next_words"], help="Language-model runs: words to add to "
                                                                          f"the prompt. [default: {NEXT_WORDS}]")] = None,
    json_output: Annotated[bool, typer.Option("--json", help="Print one JSON object per question (JSON lines) on "
                                                            "stdout; a language model's, one for the prompt.")] = False,
    device: Device = "auto",
) -> None:
    """Answer each question of STORY from the sentences before it: one `question<TAB>answer<TAB>probability`
    line each (a fourth column says right or wrong when the input gives answers). With a language-model
    run, STORY is a prompt and the output its --next most likely next words."""
    from memn2n_cli.commands import kinds
    from memn2n_cli.qa.inference import default_run, read_story_input

    raw, name = read_story_input(story)
    if checkpoint is None:
        checkpoint, note = default_run(task=task)
        print(note, file=sys.stderr)
    run = Path(checkpoint)
    kinds.for_run(run).predict(run, raw=raw, name=name, model_task=task, top_k=top_k, next_words=next_words,
                               json_output=json_output, device=device)
