"""The question-answering recipe as a library: what `train`, `eval`, `predict`, `visualize` and
`sweep` compute for a task of kind "qa" (bAbI, jsonl, a plugin's), from options to data.

Each function takes its options by name (an option of the other kind of task, given, is an
error), checks them, and returns what it computed; progress reaches the caller through
callbacks. The work itself is in qa/runs.py (train, eval), qa/inference.py (predict, visualize)
and qa/sweep.py; the command line renders the results (memn2n_cli/commands/qa_output.py).
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Callable

from memn2n_cli.configs import RESTARTS, TOP_K
from memn2n_cli.errors import ArgumentError, UserError
from memn2n_cli.recipes.options import LM_ONLY, check_backend, check_preset, given, refuse


def load(path: Path, task: int | None = None):
    """The library's handle on a trained model (`memn2n.load`)."""
    from memn2n_cli.qa.inference import QARun

    return QARun.load(path, task)


def fit(task: str, *, tasks: list[str], joint: bool, data_dir: Path | None, out: Path, resume: bool, device: str,
        options: dict, report: Callable[[str, dict], None] | None = None) -> dict:
    """Train with the options given (the rest the configs' defaults); the summary. ``report(label,
    record)`` follows every epoch."""
    from memn2n_cli.configs import qa_settings
    from memn2n_cli.qa.runs import qa_task, train_qa

    refuse(options, LM_ONLY, "a language model")
    task_ids = qa_task(task).parse_task_ids(tasks)
    model, config = qa_settings(given(options), joint)
    return train_qa(task, task_ids, joint, data_dir, out, model, config, device, report, resume)


def evaluate(run: Path, *, split: str, data_dir: Path | None, device: str) -> dict:
    """The error of every model of ``run`` on ``split``: {split, tasks, mean_<split>_error, ...}."""
    from memn2n_cli.qa.runs import evaluate_run

    return {"split": split, **evaluate_run(run, split, data_dir, device)}


def answer(run: Path, *, raw: bytes, name: str, model_task: int | None, top_k: int | None, next_words: int | None,
           device: str = "auto"):
    """The predictions of ``run``'s model for every question of a story file's bytes (`memn2n.answer`)."""
    return list(answers(run, raw=raw, name=name, model_task=model_task, top_k=top_k, next_words=next_words,
                        device=device))


def answers(run: Path, *, raw: bytes, name: str, model_task: int | None, top_k: int | None, next_words: int | None,
            device: str = "auto"):
    """`answer`'s predictions one batch at a time, as they are computed (`memn2n predict` prints
    them so); everything is checked before the first. ``top_k``: None for the default, `TOP_K`."""
    from memn2n_cli.qa.inference import QARun

    refuse({"next_words": next_words}, LM_ONLY, "a language model")
    loaded = QARun.load(run, model_task, device)
    return loaded.answers(loaded.read(raw, name), TOP_K if top_k is None else top_k)


def attention(run: Path, *, story: tuple[bytes, str] | None, model_task: int | None, sample: int, seed: int,
              errors: bool, data_dir: Path | None, device: str = "auto"):
    """Figure 2's predictions: those of a story file's questions (``story``: its bytes and name),
    else of ``sample`` test questions drawn with ``seed`` (with ``errors``, among the wrong ones)."""
    from memn2n_cli.qa.inference import QARun

    if story is not None and errors:
        raise ArgumentError("errors", "{} picks among the test questions: it takes no story")
    loaded = QARun.load(run, model_task, device)
    if story is not None:
        return loaded.answer(loaded.read(*story))
    test = loaded.task.read(loaded.data_dir(data_dir), loaded.config["tasks"], "test")
    predictions = [p for p in loaded.answer(test) if not errors or not p.correct]
    if not predictions:
        raise UserError("the model answers every test question right: nothing to show with --errors", run)
    picked = sorted(random.Random(seed).sample(range(len(predictions)), min(sample, len(predictions))))
    return [predictions[i] for i in picked]


def sweep_spec(task: str, *, tasks: list[str], grid: dict[str, list], fixed: dict[str, list], restarts: int | None,
               joint: bool, preset: str | None, column: list[str], select: str | None, seed: int, data_dir: Path | None):
    """The sweep the options describe (a `sweep.SweepSpec`), every rule checked before any training.
    ``grid``: option -> its values, every combination a configuration; ``fixed``: the options
    given for all of them (option -> [value]), none of them in ``grid``."""
    from memn2n_cli.qa.runs import qa_task, resolve_data
    from memn2n_cli.qa.sweep import SweepSpec
    from memn2n_cli.sweeps import grid_and_options

    options = grid_and_options(grid, fixed)
    select = select or "train"
    if select not in ("train", "valid"):
        raise ArgumentError("select", "{} is train or valid, not " + repr(select))
    qa = qa_task(task)
    task_ids = qa.parse_task_ids(tasks, default="all")
    presets = qa.presets()
    check_preset(task, presets, preset, column, options)
    if preset is not None:
        if joint:
            raise UserError(f"--preset {preset} names its columns: it takes no --joint")
        chosen = [presets[preset][name] for name in column or presets[preset]]
        if len(task_ids) < 2 and any(c.get("joint") for c in chosen):
            raise UserError(f"--preset {preset} has joint columns: it needs at least two tasks (e.g. --task all)")
    spec = SweepSpec(task=task, task_ids=task_ids, joint=joint, restarts=restarts or RESTARTS, seed=seed, select=select,
                     grid=options, data_dir=str(resolve_data(qa, data_dir, task_ids).resolve()), preset=preset,
                     columns=[name for name in presets[preset] if name in column] if column else None)  # its order
    for _, overrides in spec.configurations():
        spec.settings(overrides)  # an impossible option value fails here, before any training
    return spec


def sweep(spec, out: Path, *, backend: str = "local", workers: int = 1, on_trial: Callable | None = None,
          on_epoch: Callable | None = None, device: str = "auto") -> dict:
    """Run the sweep ``spec`` into ``out`` on ``device`` (trials already finished there are kept);
    its summary."""
    from memn2n_cli.devices import resolve_device
    from memn2n_cli.qa.sweep import run_sweep

    check_backend(backend)
    return run_sweep(spec, out, backend, workers, on_trial, on_epoch, device=resolve_device(device))
