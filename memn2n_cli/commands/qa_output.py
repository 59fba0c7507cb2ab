"""What the commands print for a question-answering task (bAbI, jsonl, a plugin's): each
function calls the library recipe (memn2n_cli/recipes/qa.py) and renders what it returns, with
progress on stderr and results on stdout."""

from __future__ import annotations

import sys
from contextlib import nullcontext
from pathlib import Path

from memn2n_cli.commands.app import print_json, stderr, stdout
from memn2n_cli.configs import SPLITS
from memn2n_cli.errors import UserError
from memn2n_cli.recipes import qa as recipe


def train(task: str, *, tasks: list[str], joint: bool, data_dir: Path | None, out: Path, resume: bool, device: str,
          json_output: bool, options: dict) -> None:
    from memn2n_cli.commands.report import results_table
    from memn2n_cli.configs import qa_settings
    from memn2n_cli.recipes.options import LM_ONLY, given, refuse

    refuse(options, LM_ONLY, "a language model")
    report, progress = _progress_reporter(qa_settings(given(options), joint)[1])  # its bars need the epochs
    with progress or nullcontext():
        summary = recipe.fit(task, tasks=tasks, joint=joint, data_dir=data_dir, out=out, resume=resume, device=device,
                             options=options, report=report)
    if json_output:
        print_json(summary)
    else:
        stdout().print(results_table(summary, SPLITS))
    print(f"saved {out}", file=sys.stderr)


def evaluate(run: Path, *, split: str, data_dir: Path | None, device: str, json_output: bool) -> None:
    from memn2n_cli.commands.report import results_table

    summary = recipe.evaluate(run, split=split, data_dir=data_dir, device=device)
    if json_output:
        print_json(summary)
    else:
        stdout().print(results_table(summary, (split,)))


def predict(run: Path, *, raw: bytes, name: str, model_task: int | None, top_k: int | None, next_words: int | None,
            json_output: bool, device: str) -> None:
    """Each answer printed as it is computed (a pipe gets the first before the story's last is
    answered); the accuracy, where the story gives answers, after them on stderr."""
    predictions = recipe.answers(run, raw=raw, name=name, model_task=model_task, top_k=top_k, next_words=next_words,
                                 device=device)
    judged = right = 0
    for p in predictions:
        if p.correct is not None:
            judged, right = judged + 1, right + p.correct
        if json_output:
            print_json(p.to_json())
            continue
        verdict = "" if p.correct is None else "\tright" if p.correct else f"\twrong: {p.question.answer}"
        print(f"{p.question.text}\t{p.answer}\t{p.probability:.4f}{verdict}")
    if judged:
        print(f"accuracy {100 * right / judged:.1f}% ({right}/{judged})", file=sys.stderr)


def visualize(run: Path, *, story: str | None, hops: bool, memory_positions: bool, model_task: int | None, sample: int, seed: int,
              errors: bool, data_dir: Path | None, out: Path | None, device: str) -> None:
    """Figure 2: each hop's attention over the sentences of a story (``hops``, the only view here)."""
    from rich.console import Console
    from rich.text import Text

    from memn2n_cli.commands.report import attention_view
    from memn2n_cli.qa.inference import read_story_input

    if memory_positions:
        raise UserError("--memory-positions shows a language-model run; a question-answering run has --hops")
    if out is not None and out.suffix.lower() not in (".svg", ".html"):
        raise UserError("--out must name a .svg or .html file", out)
    predictions = recipe.attention(run, story=None if story is None else read_story_input(story), model_task=model_task,
                                   sample=sample, seed=seed, errors=errors, data_dir=data_dir, device=device)
    console = Console(record=out is not None, soft_wrap=False)
    for prediction in predictions:
        console.print(Text(prediction.question.source, style="dim"), soft_wrap=True)  # FILE:LINE whole, however long
        console.print(attention_view(prediction))
    if out is not None:
        from memn2n_cli.checkpoint import write_files

        page = console.export_svg(title="memn2n visualize") if out.suffix.lower() == ".svg" else console.export_html()
        write_files(out.parent, {out.name: page.encode()})  # whole or not at all
        print(f"saved {out}", file=sys.stderr)


def sweep(task: str, *, out: Path, tasks: list[str], grid: list[str], args: list[str], restarts: int | None, joint: bool,
          preset: str | None, column: list[str], select: str | None, seed: int, backend: str, workers: int,
          data_dir: Path | None, json_output: bool, device: str) -> None:
    from memn2n_cli.qa.sweep import OPTION_TYPES
    from memn2n_cli.sweeps import parse_grid, parse_options

    spec = recipe.sweep_spec(task, tasks=tasks, grid=parse_grid(grid, OPTION_TYPES),
                             fixed=parse_options(args, OPTION_TYPES), restarts=restarts, joint=joint, preset=preset,
                             column=column, select=select, seed=seed, data_dir=data_dir)
    on_trial, on_epoch, progress = _progress(spec, out)
    with progress or nullcontext():
        summary = recipe.sweep(spec, out, backend=backend, workers=workers, on_trial=on_trial, on_epoch=on_epoch,
                               device=device)
    if json_output:
        print_json({k: summary[k] for k in ("configurations", "cells", "columns", "out")})
    else:
        stdout().print(_matrix(summary))
    print(f"results in {out}/results.{{json,csv,md}}", file=sys.stderr)


def _progress_reporter(config):
    """A rich progress bar on a terminal, else a plain line every 10 epochs and at phase changes."""
    if not sys.stderr.isatty():
        last_phase: dict[str, str] = {}

        def plain(label: str, record: dict) -> None:
            if record["epoch"] % 10 == 0 or last_phase.setdefault(label, record["phase"]) != record["phase"]:
                last_phase[label] = record["phase"]
                valid = f" valid {record['valid_error']:.1f}%" if "valid_error" in record else ""
                print(f"{label} epoch {record['epoch']} ({record['phase']}, lr {record['lr']:.5f}): "
                      f"train {record['train_error']:.1f}%{valid}", file=sys.stderr, flush=True)
        return plain, None

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                        TextColumn("{task.fields[status]}"), TimeElapsedColumn(), console=stderr())
    bars: dict[str, int] = {}

    def fancy(label: str, record: dict) -> None:
        if label not in bars:
            linear = config.ls_epochs if config.linear_start else 0
            bars[label] = progress.add_task(label, total=config.epochs + linear, status="")
        bar = bars[label]
        if record["phase"] == "softmax" and progress.tasks[bar].fields["status"].startswith("linear"):
            progress.update(bar, total=record["epoch"] - 1 + config.epochs)  # linear start ended early
        valid = f"valid {record['valid_error']:.1f}%" if "valid_error" in record else ""
        progress.update(bar, completed=record["epoch"],
                        status=f"{record['phase']} lr {record['lr']:.4f} train {record['train_error']:.1f}% {valid}")

    return fancy, progress


def _progress(spec, out: Path):
    """One overall bar counting the epochs of every restart, with elapsed time and an estimate of
    what is left, and the latest trial's result; plain lines off a terminal (each trial, and every
    10% of the epochs). Returns (on_trial, on_epoch, rich progress or None)."""
    from memn2n_cli.sweeps import trial_file

    def epochs(trial: dict) -> int:  # the most a restart of this trial trains
        config = spec.settings(trial["overrides"])[1]
        return config.epochs + (config.ls_epochs if config.linear_start else 0)

    def key(trial: dict) -> str:
        return f"{trial['label']}/{trial['name']}"

    trials = spec.trials()
    total = sum(spec.restarts * epochs(t) for t in trials)
    state = {"completed": sum(spec.restarts * epochs(t) for t in trials if trial_file(out, t).exists()), "shown": 0}
    counted: dict[str, int] = {}  # epochs reported per trial in flight

    def describe(result: dict) -> str:
        chosen = result["restarts"][result["selected"]]["mean"]
        return (f"{result['name']} {result['label']}: best of {len(result['restarts'])} (restart {result['selected']}) "
                f"test {chosen['test_error']:.1f}%")

    def on_epoch(trial: dict) -> None:
        counted[key(trial)] = counted.get(key(trial), 0) + 1
        advance(1, None)

    def on_trial(result: dict, done: int, total_trials: int) -> None:  # a restart may stop early (ls_patience)
        advance(spec.restarts * epochs(result) - counted.pop(key(result), 0), f"[{done}/{total_trials}] {describe(result)}")

    if not sys.stderr.isatty():
        def advance(n: int, line: str | None) -> None:
            state["completed"] += n
            if line:
                print(line, file=sys.stderr, flush=True)
            elif state["completed"] * 10 // total > state["shown"]:
                state["shown"] = state["completed"] * 10 // total
                print(f"{10 * state['shown']}% of the epochs done", file=sys.stderr, flush=True)

        return on_trial, on_epoch, None
    from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    progress = Progress(TextColumn("sweep"), BarColumn(), TaskProgressColumn(), TimeElapsedColumn(),
                        TextColumn("left"), TimeRemainingColumn(), TextColumn("{task.description}"), console=stderr())
    bar = progress.add_task("", total=total, completed=state["completed"])

    def advance(n: int, line: str | None) -> None:
        progress.update(bar, advance=n, **({"description": line} if line else {}))

    return on_trial, on_epoch, progress


def _matrix(summary: dict):
    """results.md's table, for the terminal: a failed task's cell in red."""
    from rich.table import Table
    from rich.text import Text

    from memn2n_cli.qa.sweep import has_paper, matrix
    from tasks.qa import PASS_ERROR

    spec = summary["spec"]
    rows, means, failed = matrix(summary)
    table = Table(title=Text(f"Test error (%), best of {spec['restarts']} by {spec['select']} error"
                             f"{' (the paper in brackets)' if has_paper(summary) else ''}  ·  {summary['out']}"), title_justify="left")
    table.add_column("Task", justify="right")
    for label in summary["configurations"]:
        table.add_column(label, justify="right")
    for t, cells in rows:
        table.add_row(t, *(f"[red]{text}[/]" if bad else text for text, bad in cells))
    table.add_section()
    table.add_row("Mean", *means)
    table.add_row(f"Failed (> {PASS_ERROR:g}%)", *failed)
    return table
