"""What the commands print for a language-model task (ptb, text8): each function calls the
library recipe (memn2n_cli/recipes/lm.py) and renders what it returns, with progress on stderr
and results on stdout."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import typer

from memn2n_cli.commands.app import print_json, stdout
from memn2n_cli.configs import LMTrainConfig
from memn2n_cli.errors import UserError
from memn2n_cli.recipes import lm as recipe
from memn2n_cli.wording import counted


def train(task: str, *, tasks: list[str], joint: bool, data_dir: Path | None, out: Path, resume: bool, device: str,
          json_output: bool, options: dict) -> None:
    def report(record: dict) -> None:
        print(f"{task} epoch {record['epoch']} (lr {record['lr']:.5f}): train perplexity "
              f"{record['train_perplexity']:.1f}, valid {record['valid_perplexity']:.1f}; {record['train_seconds']:.0f} s of training",
              file=sys.stderr, flush=True)

    def progress(record: dict) -> None:
        print(f"{task} epoch {record['epoch']}: {record['step']:,} of {record['steps']:,} steps, train perplexity "
              f"{record['train_perplexity']:.1f} so far (checkpointed)", file=sys.stderr, flush=True)

    summary = recipe.fit(task, tasks=tasks, joint=joint, data_dir=data_dir, out=out, resume=resume, device=device,
                         options=options, report=report, progress=progress)
    if int(os.environ.get("RANK", "0")) != 0:
        return  # under torchrun, one process reports
    if json_output:
        print_json(summary)
    else:
        state = ("diverged" if summary["diverged"] else "finished" if summary["finished"]
                 else "stopped; continue with --resume")
        line = f"{task}: {counted(summary['epochs'], 'epoch')}, {counted(summary['steps'], 'step')}, {state}"
        if summary["valid_perplexity"] is not None:
            line += f"; valid perplexity {summary['valid_perplexity']:.1f}"
        if summary["test_perplexity"] is not None:
            line += f", test perplexity {summary['test_perplexity']:.1f}"
        stdout().print(line)
    print(f"saved {out}", file=sys.stderr)
    if summary["diverged"]:
        print(f"error: {out}: diverged in epoch {summary['epochs']} (validation perplexity not finite) and stopped; "
              f"the paper clips the gradient norm at {LMTrainConfig.max_grad_norm:g} (--max-grad-norm) to prevent it",
              file=sys.stderr)
        raise typer.Exit(1)


def evaluate(run: Path, *, split: str, data_dir: Path | None, device: str, json_output: bool) -> None:
    summary = recipe.evaluate(run, split=split, data_dir=data_dir, device=device)
    if json_output:
        print_json(summary)
    else:
        print(f"{split} perplexity {summary['perplexity']:.2f} over {summary['tokens']} tokens  ·  {run}")


def predict(run: Path, *, raw: bytes, name: str, model_task: int | None, top_k: int | None, next_words: int | None,
            json_output: bool, device: str) -> None:
    """STORY is a prompt: print its most likely next words."""
    produced = recipe.answer(run, raw=raw, name=name, model_task=model_task, top_k=top_k, next_words=next_words,
                             device=device)
    if json_output:
        print_json({"prompt": produced["prompt"], "next": [{"word": w, "probability": p} for w, p in produced["next"]]})
    else:
        print(" ".join(w for w, _ in produced["next"]))


def visualize(run: Path, *, story: str | None, hops: bool, memory_positions: bool, model_task: int | None, sample: int, seed: int,
              errors: bool, data_dir: Path | None, out: Path | None, device: str) -> None:
    """Figure 3 in the terminal and, with --out FILE.png (or .svg), as a picture."""
    from memn2n_cli import plots
    from memn2n_cli.commands.report import memory_position_view

    if hops:
        raise UserError("--hops shows a question-answering run; a language model has --memory-positions")
    if story is not None or model_task is not None or errors:
        raise UserError("a language-model run shows Figure 3 over its test set: it takes no STORY, --task or --errors")
    if out is not None:
        plots.check_picture_path(out)  # before anything is read
    weights, config = recipe.memory_positions(run, data_dir=data_dir, device=device)
    stdout().print(memory_position_view(weights))
    if out is not None:
        figure = plots.new_figure((8, 0.4 * len(weights) + 1.2), layout=None)
        axes = figure.subplots()
        axes.imshow(weights.numpy(), cmap="gray", aspect="auto", interpolation="nearest")
        axes.set_xlabel("memory position (1 = the current word)")
        axes.set_ylabel("hop")
        axes.set_yticks(range(len(weights)), [str(k + 1) for k in range(len(weights))])
        axes.set_xticks([i - 1 for i in (1, *range(25, weights.shape[1] + 1, 25))],
                        [str(i) for i in (1, *range(25, weights.shape[1] + 1, 25))])
        axes.set_title(f"Average attention per memory position, rows scaled to 1 ({config['task']} test set)")
        figure.tight_layout()
        plots.save_figure(figure, out)
        print(f"saved {out}", file=sys.stderr)


def sweep(task: str, *, out: Path, tasks: list[str], grid: list[str], args: list[str], restarts: int | None, joint: bool,
          preset: str | None, column: list[str], select: str | None, seed: int, backend: str, workers: int,
          data_dir: Path | None, json_output: bool, device: str) -> None:
    """Table 2's rows: each configuration's restart with the lowest validation perplexity. With
    ``preset`` (table2), the paper's configurations; ``column`` trains only those named now."""
    from memn2n_cli.lm.sweep import results_markdown

    from memn2n_cli.lm.sweep import OPTION_TYPES
    from memn2n_cli.sweeps import parse_grid, parse_options

    spec = recipe.sweep_spec(task, tasks=tasks, grid=parse_grid(grid, OPTION_TYPES),
                             fixed=parse_options(args, OPTION_TYPES), restarts=restarts, joint=joint, preset=preset,
                             column=column, select=select, seed=seed, data_dir=data_dir)

    def on_trial(result: dict, done: int, total: int) -> None:
        print(f"[{done}/{total}] {task} {result['label']} restart {result['restart']}: valid perplexity "
              f"{result['valid_perplexity']:.1f}, test {result['test_perplexity']:.1f}", file=sys.stderr, flush=True)

    summary = recipe.sweep(spec, out, backend=backend, workers=workers, only=column or None, on_trial=on_trial,
                           device=device)
    if json_output:
        print_json({k: summary[k] for k in ("rows", "out")})
    else:
        stdout().print(results_markdown(summary), markup=False, highlight=False)
    print(f"results in {out}/results.{{json,csv,md}}", file=sys.stderr)
