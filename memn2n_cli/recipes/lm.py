"""The language-model recipe: what `train`, `eval`, `predict`, `visualize` and `sweep` do for a
task of kind "lm" (ptb, text8), from parsed options to what is printed.

Each function takes the command's options by name; an option of question answering, given, is an
error. The work itself is in lm_training.py and lm_sweep.py; this module chooses the settings and
prints.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from memn2n_cli.cli import stdout
from memn2n_cli.errors import UserError
from memn2n_cli.recipes.options import QA_ONLY, check_preset, given, refuse

NEXT_WORDS = 10  # `predict --next`


def load(path: Path, task: int | None = None):
    """The library's handle on a trained model (`memn2n.load`)."""
    from memn2n_cli.lm_training import LMRun

    if task is not None:
        raise UserError("a language-model run holds one model: leave out task")
    return LMRun.load(path)


def fit(task: str, *, tasks: list[str], joint: bool, data_dir: Path | None, out: Path, resume: bool, device: str,
        options: dict, report=None, progress=None) -> dict:
    """Train (or resume) to the stopping rule with the options given (the rest the configs'
    defaults); the summary. ``report(record)`` follows every epoch, ``progress(record)`` every
    checkpoint within one."""
    from memn2n_cli.configs import lm_settings
    from memn2n_cli.lm_training import train_lm
    from tasks.lm import resolve_data_dir

    if tasks or joint:
        raise UserError("--task and --joint are options of question answering")
    refuse(options, QA_ONLY, "question answering")
    model, config = lm_settings(given(options))
    return train_lm(task, resolve_data_dir(task, data_dir), out, model, config, resume, report, device, progress)


def train(task: str, *, tasks: list[str], joint: bool, data_dir: Path | None, out: Path, resume: bool, device: str,
          json_output: bool, options: dict) -> None:
    def report(record: dict) -> None:
        print(f"{task} epoch {record['epoch']} (lr {record['lr']:.5f}): train perplexity "
              f"{record['train_perplexity']:.1f}, valid {record['valid_perplexity']:.1f}; {record['train_seconds']:.0f} s of training",
              file=sys.stderr, flush=True)

    def progress(record: dict) -> None:
        print(f"{task} epoch {record['epoch']}: {record['step']:,} of {record['steps']:,} steps, train perplexity "
              f"{record['train_perplexity']:.1f} so far (checkpointed)", file=sys.stderr, flush=True)

    summary = fit(task, tasks=tasks, joint=joint, data_dir=data_dir, out=out, resume=resume, device=device,
                  options=options, report=report, progress=progress)
    if int(os.environ.get("RANK", "0")) != 0:
        return  # under torchrun, one process reports
    if json_output:
        print(json.dumps(summary))
    else:
        state = "finished" if summary["finished"] else "stopped; continue with --resume"
        valid = f"; valid perplexity {summary['history'][-1]['valid_perplexity']:.1f}" if summary["history"] else ""
        stdout().print(f"{task}: {summary['epochs']} epochs, {summary['steps']} steps, {state}{valid}")
    print(f"saved {out}", file=sys.stderr)


def evaluate(run: Path, *, split: str, data_dir: Path | None, device: str, json_output: bool) -> None:
    from memn2n_cli.lm_training import evaluate_lm_run

    summary = evaluate_lm_run(run, split, data_dir)
    print(json.dumps(summary) if json_output else
          f"{split} perplexity {summary['perplexity']:.2f} over {summary['tokens']} tokens  ·  {run}")


def predict(run: Path, *, raw: bytes, name: str, model_task: int | None, top_k: int, next_words: int | None,
            json_output: bool) -> None:
    """STORY is a prompt: print its ``next_words`` most likely next words."""
    from memn2n_cli.lm_training import continue_text, load_lm
    from tasks import get_task
    from tasks.text import decode_lines

    refuse({"model_task": model_task}, QA_ONLY, "question answering")
    model, config, words = load_lm(run)
    prompt = get_task(config["task"]).tokenize(" ".join(decode_lines(raw, name)))
    produced = continue_text(model, words, prompt, next_words or NEXT_WORDS)
    if json_output:
        print(json.dumps({"prompt": prompt, "next": [{"word": w, "probability": p} for w, p in produced]}))
    else:
        print(" ".join(w for w, _ in produced))


def visualize(run: Path, *, story: str | None, hops: bool, memory_positions: bool, model_task: int | None, sample: int, seed: int,
              errors: bool, data_dir: Path | None, out: Path | None) -> None:
    """Figure 3 in the terminal and, with --out FILE.png, as a picture."""
    from memn2n_cli.lm_training import attention_by_position, run_corpus
    from memn2n_cli.report import memory_position_view

    if hops:
        raise UserError("--hops shows a question-answering run; a language model has --memory-positions")
    if story is not None or model_task is not None or errors:
        raise UserError("a language-model run shows Figure 3 over its test set: it takes no STORY, --task or --errors")
    if out is not None and out.suffix.lower() != ".png":
        raise UserError("--out must name a .png file", out)
    model, config, corpus = run_corpus(run, data_dir)
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


def sweep(task: str, *, out: Path, tasks: list[str], grid: list[str], args: list[str], restarts: int | None, joint: bool,
          preset: str | None, column: list[str], select: str | None, seed: int, backend: str, workers: int,
          data_dir: Path | None, json_output: bool) -> None:
    """Table 2's rows: each configuration's restart with the lowest validation perplexity. With
    ``preset`` (table2), the paper's configurations; ``column`` trains only those named now."""
    from memn2n_cli.lm_sweep import OPTION_TYPES, LMSweepSpec, results_markdown, run_lm_sweep
    from memn2n_cli.sweep import RESTARTS, grid_and_options
    from tasks import get_task
    from tasks.lm import resolve_data_dir

    if tasks or joint or select not in (None, "valid"):
        raise UserError("a language-model sweep takes no --task or --joint, and selects by validation perplexity")
    options = grid_and_options(grid, args, OPTION_TYPES)
    check_preset(task, get_task(task).presets(), preset, column, options)
    spec = LMSweepSpec(task=task, restarts=restarts or (1 if preset else RESTARTS), seed=seed, grid=options,
                       data_dir=str(resolve_data_dir(task, data_dir).resolve()), preset=preset)
    for _, overrides in spec.configurations():
        spec.settings(overrides)  # an impossible combination fails here, before any training

    def on_trial(result: dict, done: int, total: int) -> None:
        print(f"[{done}/{total}] {task} {result['label']} restart {result['restart']}: valid perplexity "
              f"{result['valid_perplexity']:.1f}, test {result['test_perplexity']:.1f}", file=sys.stderr, flush=True)

    summary = run_lm_sweep(spec, out, backend, workers, on_trial, only=column or None)
    if json_output:
        print(json.dumps({k: summary[k] for k in ("rows", "out")}))
    else:
        stdout().print(results_markdown(summary), markup=False, highlight=False)
    print(f"results in {out}/results.{{json,csv,md}}", file=sys.stderr)
