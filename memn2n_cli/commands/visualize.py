"""`memn2n visualize --hops`: where each hop of a trained model looks, as in the paper's Figure 2."""

from __future__ import annotations

import random
import sys
from pathlib import Path
from typing import Annotated

import typer

from memn2n_cli.cli import app, command
from memn2n_cli.commands.options import Checkpoint, DataDir, ModelTask
from memn2n_cli.errors import UserError

STORY_HELP = "Story file (as for predict), - for stdin; without it, stories of the run's test split."


@app.command()
@command
def visualize(
    story: Annotated[str | None, typer.Argument(metavar="[STORY]", help=STORY_HELP)] = None,
    checkpoint: Checkpoint = None,
    hops: Annotated[bool, typer.Option("--hops", help="Attention of every hop over the story's sentences (Figure 2); the default view.")] = True,
    task: ModelTask = None,
    sample: Annotated[int, typer.Option(min=1, help="Test stories to show when no STORY is given.")] = 3,
    seed: Annotated[int, typer.Option(help="Which test stories are sampled.")] = 0,
    errors: Annotated[bool, typer.Option("--errors", help="Sample only questions the model gets wrong.")] = False,
    data_dir: DataDir = None,
    out: Annotated[Path | None, typer.Option(help="Also save the tables as FILE.svg or FILE.html.")] = None,
) -> None:
    """Show, for each question, the attention of every hop over the story, the support and the answer."""
    from rich.console import Console

    from memn2n_cli.inference import choose_model, newest_run, predict, read_story_input
    from memn2n_cli.report import attention_view
    from tasks import get_task
    from tasks.babi import read_stories, resolve_data_dir

    if out is not None and out.suffix.lower() not in (".svg", ".html"):
        raise UserError("--out must name a .svg or .html file", out)
    if checkpoint is None:
        checkpoint = newest_run()
        print(f"using {checkpoint}", file=sys.stderr)
    model, config, vocab, _ = choose_model(Path(checkpoint), task)
    if story is not None:
        predictions = predict(model, vocab, read_stories(*read_story_input(story)))
    else:
        source = resolve_data_dir(data_dir if data_dir is not None else Path(config["data"]["dir"]))
        test = get_task("babi").read(source, config["tasks"], "test")
        predictions = [p for p in predict(model, vocab, test) if not errors or not p.correct]
        if not predictions:
            raise UserError("the model answers every test question right: nothing to show with --errors", checkpoint)
        picked = sorted(random.Random(seed).sample(range(len(predictions)), min(sample, len(predictions))))
        predictions = [predictions[i] for i in picked]
    console = Console(record=out is not None, soft_wrap=False)
    for prediction in predictions:
        console.print(attention_view(prediction))
    if out is not None:
        (console.save_svg if out.suffix.lower() == ".svg" else console.save_html)(str(out), title="memn2n visualize")
        print(f"saved {out}", file=sys.stderr)
