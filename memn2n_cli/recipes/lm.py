"""The language-model recipe as a library: what `train`, `eval`, `predict`, `visualize` and
`sweep` compute for a task of kind "lm" (ptb, text8), from options to data.

Each function takes its options by name (an option of question answering, given, is an error),
checks them, and returns what it computed; progress reaches the caller through callbacks. The
work itself is in lm/training.py and lm/sweep.py; the command line renders the results
(memn2n_cli/commands/lm_output.py).
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from memn2n_cli.configs import NEXT_WORDS, RESTARTS, check_next_words
from memn2n_cli.errors import UserError
from memn2n_cli.recipes.options import QA_ONLY, check_backend, check_preset, given, refuse


def load(path: Path, task: int | None = None):
    """The library's handle on a trained model (`memn2n.load`)."""
    from memn2n_cli.lm.training import LMRun

    if task is not None:
        raise UserError("a language-model run holds one model: leave out task")
    return LMRun.load(path)


def fit(task: str, *, tasks: list[str], joint: bool, data_dir: Path | None, out: Path, resume: bool, device: str,
        options: dict, report: Callable[[dict], None] | None = None,
        progress: Callable[[dict], None] | None = None) -> dict:
    """Train (or resume) to the stopping rule with the options given (the rest the configs'
    defaults); the summary. ``report(record)`` follows every epoch, ``progress(record)`` every
    checkpoint within one."""
    from memn2n_cli.checkpoint import CONFIG_FILE, read_config, run_data_dir
    from memn2n_cli.configs import lm_settings
    from memn2n_cli.lm.training import train_lm
    from tasks.lm import resolve_data_dir

    if tasks or joint:
        raise UserError("--task and --joint are options of question answering")
    refuse(options, QA_ONLY, "question answering")
    model, config = lm_settings(given(options))
    if resume and data_dir is None and (out / CONFIG_FILE).is_file():
        data_dir = run_data_dir(read_config(out), None)  # the folder it started on, while it is there
    return train_lm(task, resolve_data_dir(task, data_dir), out, model, config, resume, report, device, progress)


def evaluate(run: Path, *, split: str, data_dir: Path | None, device: str) -> dict:
    """Perplexity on ``split``: {split, perplexity, loss, tokens, run}."""
    from memn2n_cli.lm.training import evaluate_lm_run

    return evaluate_lm_run(run, split, data_dir, device)


def answer(run: Path, *, raw: bytes, name: str, model_task: int | None, top_k: int | None, next_words: int | None,
           device: str = "auto") -> dict:
    """A story file's bytes as a prompt: {prompt (its tokens), next: the most likely next words}."""
    from memn2n_cli.devices import resolve_device
    from memn2n_cli.lm.training import LMRun
    from tasks.text import decode_lines

    refuse({"model_task": model_task, "top_k": top_k}, QA_ONLY, "question answering")
    next_words = NEXT_WORDS if next_words is None else next_words
    check_next_words(next_words)  # named as given here (next_words=, --next), before the run is read
    torch_device = resolve_device(device)
    loaded = LMRun.load(run)
    loaded.model.to(torch_device)
    prompt = " ".join(decode_lines(raw, name))
    return {"prompt": loaded.task.tokenize(prompt), "next": loaded.continue_text(prompt, next_words)}


def memory_positions(run: Path, *, data_dir: Path | None, device: str = "auto"):
    """Figure 3's data: the average attention of each hop per memory position over the test set
    (K, N), rows scaled to 1, and the run's config."""
    from memn2n_cli.devices import resolve_device
    from memn2n_cli.lm.training import attention_by_position, run_corpus

    torch_device = resolve_device(device)
    model, config, corpus = run_corpus(run, data_dir)
    return attention_by_position(model.to(torch_device), corpus.ids["test"].to(torch_device)).cpu(), config


def sweep_spec(task: str, *, tasks: list[str], grid: dict[str, list], fixed: dict[str, list], restarts: int | None,
               joint: bool, preset: str | None, column: list[str], select: str | None, seed: int, data_dir: Path | None):
    """The sweep the options describe (an `lm.sweep.LMSweepSpec`), every rule checked before any
    training; with ``preset`` (table2), the paper's configurations. ``grid``: option -> its
    values, every combination a configuration; ``fixed``: the options given for all of them
    (option -> [value]), none of them in ``grid``."""
    from memn2n_cli.lm.sweep import LMSweepSpec
    from memn2n_cli.sweeps import grid_and_options
    from tasks import get_task
    from tasks.lm import resolve_data_dir

    options = grid_and_options(grid, fixed)
    if tasks or joint or select not in (None, "valid"):
        raise UserError("a language-model sweep takes no --task or --joint, and selects by validation perplexity")
    check_preset(task, get_task(task).presets(), preset, column, options)
    spec = LMSweepSpec(task=task, restarts=restarts or (1 if preset else RESTARTS), seed=seed, grid=options,
                       data_dir=str(resolve_data_dir(task, data_dir).resolve()), preset=preset)
    for _, overrides in spec.configurations():
        spec.settings(overrides)  # an impossible combination fails here, before any training
    return spec


def sweep(spec, out: Path, *, backend: str = "local", workers: int = 1, only: list[str] | None = None,
          on_trial: Callable[[dict, int, int], None] | None = None, device: str = "auto") -> dict:
    """Run the sweep ``spec`` into ``out`` on ``device`` (trials already finished there are kept;
    with ``only``, just the configurations it names are trained now); its summary."""
    from memn2n_cli.devices import resolve_device
    from memn2n_cli.lm.sweep import run_lm_sweep

    check_backend(backend)
    return run_lm_sweep(spec, out, backend, workers, on_trial, only=only, device=resolve_device(device))
