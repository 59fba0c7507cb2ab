"""`memn2n predict STORY`: answer the questions of a story with a trained model."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from memn2n_cli.cli import app, command
from memn2n_cli.commands.options import Checkpoint, Json, ModelTask, StoryFile


@app.command("predict")
@command
def predict_command(
    story: StoryFile,
    checkpoint: Checkpoint = None,
    task: ModelTask = None,
    top_k: Annotated[int, typer.Option(min=1, help="Alternatives listed with --json.")] = 3,
    next_words: Annotated[int, typer.Option("--next", min=1, help="Language-model runs: words to add to the prompt.")] = 10,
    json_output: Json = False,
) -> None:
    """Answer each question of STORY from the sentences before it: one `question<TAB>answer<TAB>probability`
    line each (a fourth column says right or wrong when the input gives answers). With a language-model
    run, STORY is a prompt and the output its --next most likely next words."""
    from memn2n_cli.checkpoint import run_task
    from memn2n_cli.inference import choose_model, newest_run, predict, read_story_input
    from tasks import get_task
    from tasks.qa import decode_lines, read_stories

    raw, name = read_story_input(story)
    if checkpoint is None:
        checkpoint = newest_run()
        print(f"using {checkpoint}", file=sys.stderr)
    if get_task(run_task(Path(checkpoint))).kind == "lm":
        from memn2n_cli.lm_training import continue_text, load_lm

        model, config, words = load_lm(Path(checkpoint))
        prompt = get_task(config["task"]).tokenize(" ".join(decode_lines(raw, name)))
        produced = continue_text(model, words, prompt, next_words)
        if json_output:
            print(json.dumps({"prompt": prompt, "next": [{"word": w, "probability": p} for w, p in produced]}))
        else:
            print(" ".join(w for w, _ in produced))
        return
    model, _, vocab, _ = choose_model(Path(checkpoint), task)
    predictions = predict(model, vocab, read_stories(raw, name), top_k)
    for p in predictions:
        if json_output:
            print(json.dumps(p.to_json()))
            continue
        verdict = "" if p.correct is None else "\tright" if p.correct else f"\twrong: {p.question.answer}"
        print(f"{p.question.text}\t{p.answer}\t{p.probability:.4f}{verdict}")
    judged = [p.correct for p in predictions if p.correct is not None]
    if judged:
        print(f"accuracy {100 * sum(judged) / len(judged):.1f}% ({sum(judged)}/{len(judged)})", file=sys.stderr)
