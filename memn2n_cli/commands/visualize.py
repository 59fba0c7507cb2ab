"""`memn2n visualize --hops`: where each hop of a trained model looks, as in the paper's Figure 2."""

from __future__ import annotations

import random
import sys
from pathlib import Path
from typing import Annotated

import typer

from memn2n_cli.cli import app, command, stdout
from memn2n_cli.commands.options import Checkpoint, DataDir, ModelTask
from memn2n_cli.errors import UserError

STORY_HELP = "Story file (as for predict), - for stdin; without it, stories of the run's test split."


@app.command()
@command
def visualize(
    story: Annotated[str | None, typer.Argument(metavar="[STORY]", help=STORY_HELP)] = None,
    checkpoint: Checkpoint = None,
    hops: Annotated[bool, typer.Option("--hops", help="bAbI runs: attention of every hop over the story's sentences (Figure 2).")] = False,
    memory_positions: Annotated[bool, typer.Option("--memory-positions", help="Language-model runs: average attention of each memory position per hop over the test set (Figure 3).")] = False,
    task: ModelTask = None,
    sample: Annotated[int, typer.Option(min=1, help="Test stories to show when no STORY is given.")] = 3,
    seed: Annotated[int, typer.Option(help="Which test stories are sampled.")] = 0,
    errors: Annotated[bool, typer.Option("--errors", help="Sample only questions the model gets wrong.")] = False,
    data_dir: DataDir = None,
    out: Annotated[Path | None, typer.Option(help="Also save the view: FILE.svg or FILE.html (--hops), FILE.png (--memory-positions).")] = None,
) -> None:
    """Where attention goes: Figure 2 (--hops, bAbI runs) or Figure 3 (--memory-positions, language models)."""
    from rich.console import Console

    from memn2n_cli.checkpoint import run_task
    from memn2n_cli.inference import choose_model, newest_run, predict, read_story_input
    from memn2n_cli.report import attention_view
    from memn2n_cli.runs import qa_task
    from tasks import get_task
    from tasks.qa import read_stories

    if checkpoint is None:
        checkpoint = newest_run()
        print(f"using {checkpoint}", file=sys.stderr)
    if get_task(run_task(Path(checkpoint))).kind == "lm":
        if hops:
            raise UserError("--hops shows a bAbI run; a language model has --memory-positions")
        return _memory_positions(Path(checkpoint), data_dir, out)
    if memory_positions:
        raise UserError("--memory-positions shows a language-model run; a bAbI run has --hops")
    if out is not None and out.suffix.lower() not in (".svg", ".html"):
        raise UserError("--out must name a .svg or .html file", out)
    model, config, vocab, _ = choose_model(Path(checkpoint), task)
    if story is not None:
        predictions = predict(model, vocab, read_stories(*read_story_input(story)))
    else:
        task = qa_task(config["task"])
        source = task.resolve_data_dir(data_dir if data_dir is not None else Path(config["data"]["dir"]))
        test = task.read(source, config["tasks"], "test")
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


def _memory_positions(run: Path, data_dir: Path | None, out: Path | None) -> None:
    """Figure 3 in the terminal and, with --out FILE.png, as a picture."""
    from memn2n_cli.lm_training import attention_by_position, load_lm
    from memn2n_cli.report import memory_position_view
    from tasks import get_task

    if out is not None and out.suffix.lower() != ".png":
        raise UserError("--out must name a .png file", out)
    model, config, words = load_lm(run)
    corpus = get_task(config["task"]).load(data_dir or Path(config["data"]["dir"]))
    weights = attention_by_position(model, corpus.ids["test"])
    stdout().print(memory_position_view(weights))
    if out is not None:
        try:
            import matplotlib

            matplotlib.use("Agg")
            import matplotlib.pyplot as plt
        except ImportError:
            raise UserError("--out FILE.png needs matplotlib: pip install 'memn2n[plot]'") from None
        figure, axes = plt.subplots(figsize=(8, 0.4 * len(weights) + 1.2))
        axes.imshow(weights.numpy(), cmap="gray", aspect="auto", interpolation="nearest")
        axes.set_xlabel("memory position (1 = the current word)")
        axes.set_ylabel("hop")
        axes.set_yticks(range(len(weights)), [str(k + 1) for k in range(len(weights))])
        axes.set_xticks([i - 1 for i in (1, *range(25, weights.shape[1] + 1, 25))],
                        [str(i) for i in (1, *range(25, weights.shape[1] + 1, 25))])
        axes.set_title(f"Average attention per memory position, rows scaled to 1 ({config['task']} test set)")
        figure.tight_layout()
        figure.savefig(out, dpi=150)
        print(f"saved {out}", file=sys.stderr)
