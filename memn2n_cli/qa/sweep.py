"""`memn2n sweep`: Table 1 as one command. Every configuration x task x restart, best of N.

A *trial* is one configuration on one task (or on all tasks jointly) with its N restarts, trained
together (qa/restarts.py). The paper keeps, per task and configuration, the restart with the lowest
training error; ties (common: several restarts reach 0% on 1k tasks) go to the lower validation
error. ``select="valid"`` ranks by validation error first. The kept model is saved as an ordinary
run directory, and every restart's figures and seed go to the results.

Trials are independent: the local backend runs them in a pool of processes, the Ray backend as
Ray tasks on whatever cluster ``ray.init`` finds. A finished trial is a file under ``trials/``,
so running the same command again skips it and completes the rest.
"""

from __future__ import annotations

import os
import time
from dataclasses import asdict, dataclass, fields
from functools import partial
from multiprocessing import get_context
from multiprocessing.managers import SyncManager
from pathlib import Path
from typing import Callable

import torch

from memn2n_cli import sweeps
from memn2n_cli.allocator import keep_freed_memory
from memn2n_cli.checkpoint import file_checksums, write_json, write_run, writing
from memn2n_cli.configs import SPLITS, ModelOptions, TrainConfig, qa_settings
from memn2n_cli.devices import resolve_device
from memn2n_cli.errors import UserError
from memn2n_cli.history import HISTORY_FILE, history_bytes, read_history, to_tensorboard
from memn2n_cli.qa.restarts import fit_restarts
from memn2n_cli.qa.runs import PASS_ERROR, build_model, error_table, model_groups, prepare, trained_files
from memn2n_cli.qa.training import evaluate
from memn2n_cli.sweeps import (configurations, end_with_the_sweep, folder, lanes, open_sweep_dir, ray_resources,
                               read_trial, run_on_lanes, start_ray, trial_file, worker_pool)
from tasks import get_task
from tasks.qa import qa_task

OPTION_TYPES = {f.name: f.type for f in fields(ModelOptions) + fields(TrainConfig) if f.name not in ("seed", "split_seed")}
ERRORS = {"train_error": float, "valid_error": float, "test_error": float}  # percent
# A finished trial's file, beside the trial itself (`run_trial`'s result, less the kept model's files):
RESULT_FIELDS = {"selected": int, "restarts": [{"seed": int, "tasks": [{"task": int, **ERRORS}], "mean": ERRORS}],
                 "train_seconds": float, "examples_per_second": float}
@dataclass
class SweepSpec:
    """Everything that decides a sweep's results; stored as sweep.json in its directory."""

    task: str  # the registered question-answering task
    task_ids: list[int]
    joint: bool
    restarts: int
    seed: int  # restart r uses seed + r; all share the validation split of `memn2n train`
    select: str  # "train" (the paper's rule) or "valid"
    grid: dict[str, list]
    data_dir: str
    preset: str | None = None  # a named set of columns (the task's presets), each with the grid's one-value options
    columns: list[str] | None = None  # the preset's columns to train (None: all of them)

    def configurations(self) -> list[tuple[str, dict]]:
        if self.preset is None:
            return configurations(self.grid)
        fixed = {k: v[0] for k, v in self.grid.items()}
        return [(label, {**column, **fixed}) for label, column in get_task(self.task).presets()[self.preset].items()
                if self.columns is None or label in self.columns]

    def trials(self) -> list[dict]:
        trials = []
        for label, overrides in self.configurations():
            joint = overrides.get("joint", self.joint)
            for name, group in model_groups(self.task_ids, joint):
                trials.append({"label": label, "overrides": overrides, "tasks": group, "name": name})
        return trials

    def settings(self, overrides: dict) -> tuple[ModelOptions, TrainConfig]:
        chosen = {k: v for k, v in overrides.items() if k != "joint"}
        return qa_settings({**chosen, "seed": self.seed}, overrides.get("joint", self.joint))


def run_trial(spec: dict, trial: dict, threads: int = 0, restarts: list[int] | None = None,
              on_epoch: Callable[[], None] | None = None, device: str | torch.device = "auto") -> dict:
    """Train a trial's restarts together on ``device`` (all of them, or the part ``restarts``) and
    keep the best: the results, with the kept model's run-directory files as bytes under "files".
    It writes nothing: on a cluster it runs wherever Ray puts it, and the driver writes the sweep
    directory. ``on_epoch()`` is called after each epoch of each restart."""
    keep_freed_memory()  # in a worker process of the pool or of Ray
    if threads:
        torch.set_num_threads(threads)
    sweep = SweepSpec(**spec)
    options, config = sweep.settings(trial["overrides"])
    device = resolve_device(device)
    prepared = prepare(sweep.task, trial["tasks"], Path(sweep.data_dir), options, config, device)
    if not len(prepared.encoded["valid"]):  # the restarts are chosen, and their ties broken, on it
        raise UserError(f"holds no validation questions for tasks {trial['tasks']} (--validation-fraction "
                        f"{config.validation_fraction} of too few stories?): a sweep selects its restarts with them",
                        Path(sweep.data_dir))
    seeds = [sweep.seed + r for r in (range(sweep.restarts) if restarts is None else restarts)]
    models = [build_model(prepared, seed, device) for seed in seeds]
    lines: list[list[dict]] = [[] for _ in seeds]  # each restart's history.jsonl

    def on_record(restart: int, record: dict) -> None:
        lines[restart].append({**record, "seconds": time.perf_counter() - started})
        if on_epoch:
            on_epoch()

    started = time.perf_counter()
    histories = fit_restarts(models, prepared.encoded["train"], prepared.encoded["valid"], config, seeds, on_record)
    seconds = time.perf_counter() - started
    results, task = [], qa_task(sweep.task)
    for seed, model in zip(seeds, models):
        rows = error_table({split: evaluate(model, prepared.encoded[split], task=task, answers=prepared.vocab.answers)
                            for split in SPLITS}, task)
        results.append({"seed": seed, "tasks": rows,
                        "mean": {k: sum(r[k] for r in rows) / len(rows) for k in (f"{split}_error" for split in SPLITS)}})
    best = select_restart(results, sweep.select)
    examples = sum(len(h) for h in histories) * len(prepared.encoded["train"])
    speed = {"train_seconds": seconds, "examples_per_second": examples / seconds}
    _, files = trained_files(models[best], prepared, TrainConfig(**{**asdict(config), "seed": seeds[best]}),
                             {**speed, "history": histories[best]})
    return {**trial, "selected": best, "restarts": results, **speed, "files": {HISTORY_FILE: history_bytes(lines[best]), **files}}


def select_restart(restarts: list[dict], select: str) -> int:
    """The index of the restart to keep; ties (1k runs often reach 0% training error) go to the
    lower error on the other split, then to the lower seed."""
    other = "valid" if select == "train" else "train"
    return min(range(len(restarts)), key=lambda r: (restarts[r]["mean"][f"{select}_error"],
                                                    restarts[r]["mean"][f"{other}_error"], restarts[r]["seed"]))


def split_restarts(restarts: int, parts: int) -> list[list[int]]:
    """Restart indices 0..restarts-1 in ``parts`` contiguous, nearly equal parts (none empty)."""
    parts = max(1, min(parts, restarts))
    bounds = [restarts * i // parts for i in range(parts + 1)]
    return [list(range(bounds[i], bounds[i + 1])) for i in range(parts)]


def merge_parts(parts: list[dict], select: str) -> dict:
    """One trial's result from the results of its parts (trained at the same time, in order)."""
    restarts = [r for part in parts for r in part["restarts"]]
    best = select_restart(restarts, select)
    kept = next(part for part in parts if part["restarts"][part["selected"]] is restarts[best])
    seconds = max(part["train_seconds"] for part in parts)  # the parts ran side by side
    return {**kept, "selected": best, "restarts": restarts, "train_seconds": seconds,
            "examples_per_second": sum(part["examples_per_second"] for part in parts)}


def run_sweep(spec: SweepSpec, out: Path, backend: str = "local", workers: int = 1,
              on_trial: Callable[[dict, int, int], None] | None = None,
              on_epoch: Callable[[dict], None] | None = None, device: str | torch.device = "auto") -> dict:
    """Run every trial not yet finished in ``out``, on ``device`` (on a GPU host: one worker per
    GPU, each training a trial's restarts batched; ``workers`` counts CPU workers); returns the
    summary (also written as results.*). ``on_trial(result, done, total)`` follows each finished
    trial, ``on_epoch(trial)`` each epoch of one of its restarts (not reported by the Ray backend).
    ``out`` has this process as its one writer throughout (`writing`)."""
    with writing(out, "run the same `memn2n sweep` command (or memn2n.sweep call) again to go on from there"):
        return _run_sweep(spec, out, backend, workers, on_trial, on_epoch, resolve_device(device))


def _run_sweep(spec: SweepSpec, out: Path, backend: str, workers: int, on_trial: Callable[[dict, int, int], None] | None,
               on_epoch: Callable[[dict], None] | None, device: torch.device) -> dict:
    open_sweep_dir(out, asdict(spec))
    trials = spec.trials()
    results = {trial_file(out, t): read_result(out, t) for t in trials if trial_file(out, t).exists()}
    pending = [t for t in trials if trial_file(out, t) not in results]
    on_epoch = on_epoch or (lambda trial: None)

    def finished(result: dict) -> None:
        """Write the kept model, then the trial's file, which marks it done."""
        directory = folder(out, result["label"]) / result["name"]
        write_run(directory, result.pop("files"))
        to_tensorboard(directory, read_history(directory), "epoch")
        write_json(trial_file(out, result), result)
        results[trial_file(out, result)] = result
        if on_trial:
            on_trial(result, len(results), len(trials))

    if pending and backend == "ray":
        ray = start_ray()
        remote = ray.remote(**ray_resources(device))(run_trial)
        waiting = [remote.remote(asdict(spec), t, 1, device=device.type) for t in pending]
        while waiting:
            ready, waiting = ray.wait(waiting, num_returns=1)
            finished(ray.get(ready[0]))
    elif pending and min(len(lanes(device, workers)), len(pending) * (1 if device.type == "cuda" else spec.restarts)) > 1:
        _run_pool(spec, pending, lanes(device, workers), finished, on_epoch)
    else:
        for trial in pending:
            finished(run_trial(asdict(spec), trial, on_epoch=partial(on_epoch, trial), device=device))
    files = file_checksums(qa_task(spec.task).data_files(Path(spec.data_dir), spec.task_ids))  # whether the paper's figures are for them
    summary = summarize(spec, [results[trial_file(out, t)] for t in trials], out, files)
    write_results(out, summary)
    return summary


def read_result(out: Path, trial: dict) -> dict:
    """A finished trial's result, read back (`read_trial`) and checked as the summary uses it: its
    selected restart one of its restarts, each restart's rows those of the trial's tasks."""
    result, path = read_trial(out, trial, RESULT_FIELDS), trial_file(out, trial)
    if not 0 <= result["selected"] < len(result["restarts"]):
        raise UserError(f"'selected' is {result['selected']}, not one of its {len(result['restarts'])} restarts", path)
    for r, restart in enumerate(result["restarts"]):
        if sorted(row["task"] for row in restart["tasks"]) != sorted(trial["tasks"]):
            raise UserError(f"'restarts[{r}].tasks' are not the rows of tasks {trial['tasks']}", path)
    return result


def _run_pool(spec: SweepSpec, pending: list[dict], lanes: list[torch.device], finished: Callable[[dict], None],
              on_epoch: Callable[[dict], None]) -> None:
    """The local backend: trials in a pool of processes, one per lane. On the CPU, with fewer
    trials than workers (a joint sweep is one trial), each trial's restarts train in parts, merged
    when all are done; on GPUs a trial's restarts stay together, batched."""
    gpus = lanes[0].type == "cuda"
    parts = split_restarts(spec.restarts, 1 if gpus else -(-len(lanes) // len(pending)))
    lanes = lanes[: len(pending) * len(parts)]
    threads = max(1, (os.cpu_count() or 1) // len(lanes))  # the cores shared out among the processes
    manager = SyncManager(ctx=get_context("spawn"))
    manager.start(end_with_the_sweep)  # its process, which carries the epochs' queue, ends with the sweep too
    with manager, worker_pool(len(lanes)) as pool:
        epochs = manager.Queue()  # trial index, once per epoch of one of its restarts
        biggest_first = sorted(range(len(pending)), key=lambda i: -len(pending[i]["tasks"]))  # joint trials first,
        jobs = [(i, p) for i in biggest_first for p in range(len(parts))]  # so that none ends up running alone
        done: dict[int, dict[int, dict]] = {}

        def part_done(job: int, result: dict) -> None:
            i, p = jobs[job]
            done.setdefault(i, {})[p] = result
            if len(done[i]) == len(parts):
                finished(merge_parts([done[i][p] for p in range(len(parts))], spec.select))

        def report_epochs() -> None:
            while not epochs.empty():
                on_epoch(pending[epochs.get()])

        run_on_lanes(pool, lanes, [(run_trial, (asdict(spec), pending[i], threads, parts[p], partial(epochs.put, i)))
                                   for i, p in jobs], part_done, report_epochs)


def summarize(spec: SweepSpec, results: list[dict], out: Path, data_files: dict[str, str]) -> dict:
    """Per configuration and task, the selected restart's figures; per configuration, mean and
    failures; the data files (name: SHA-256), which say whether the paper's figures are for them."""
    labels = [label for label, _ in spec.configurations()]
    cells: dict[str, dict[int, dict]] = {label: {} for label in labels}
    for result in results:
        chosen = result["restarts"][result["selected"]]
        for row in chosen["tasks"]:
            cells[result["label"]][row["task"]] = {**row, "restart": result["selected"], "seed": chosen["seed"],
                                                   "run": str(folder(out, result["label"]) / result["name"])}
    columns = {label: {"mean_test_error": sum(c["test_error"] for c in cells[label].values()) / len(cells[label]),
                       "failed_tasks": sum(c["test_error"] > PASS_ERROR for c in cells[label].values())}
               for label in labels}
    return {"spec": asdict(spec), "configurations": labels, "cells": cells, "columns": columns,
            "trials": results, "out": str(out), "data_files": data_files}


def write_results(out: Path, summary: dict) -> None:
    """results.json (everything), results.csv (one row per restart and task), results.md (the matrix)."""
    rows = [["configuration", "task", "restart", "seed", "train_error", "valid_error", "test_error", "selected"]]
    for result in summary["trials"]:
        for r, restart in enumerate(result["restarts"]):
            for row in restart["tasks"]:
                rows.append([result["label"], row["task"], r, restart["seed"], f"{row['train_error']:.2f}",
                             f"{row['valid_error']:.2f}", f"{row['test_error']:.2f}", int(r == result["selected"])])
    sweeps.write_results(out, summary, rows, results_markdown(summary))


def paper_columns(summary: dict) -> dict[str, dict]:
    """The paper's figures beside each column of a sweep (the task's `paper_figures` of its data
    files; a summary written before it recorded them has none): {tasks: {task: error}, mean,
    failed}, empty and None where it has none."""
    spec = summary["spec"]
    tasks = sorted({int(t) for cells in summary["cells"].values() for t in cells})
    papers = get_task(spec["task"]).paper_figures(spec["preset"], summary.get("data_files", {}), tasks) if spec.get("preset") else {}
    return {label: papers.get(label, {"tasks": {}, "mean": None, "failed": None}) for label in summary["configurations"]}


def has_paper(summary: dict) -> bool:
    """Whether the paper's figures are beside a sweep's (its preset's, on the paper's data)."""
    return any(column["mean"] is not None for column in paper_columns(summary).values())


def beside(ours: str, paper: float | int | None, digits: int = 1) -> str:
    """A cell: ours, and the paper's figure in brackets where it has one."""
    return ours if paper is None else f"{ours} ({paper:.{digits}f})"


def matrix(summary: dict) -> tuple[list[tuple[str, list[tuple[str, bool]]]], list[str], list[str]]:
    """The table of results.md and of the terminal, as text: per task, each column's cell (ours,
    the paper's in brackets) and whether the task failed (error > PASS_ERROR); then the mean row
    and the failed-tasks row."""
    labels, columns = summary["configurations"], summary["columns"]
    paper = paper_columns(summary)
    rows = []
    for t in sorted({t for label in labels for t in summary["cells"][label]}, key=int):
        errors = [summary["cells"][label][t]["test_error"] for label in labels]
        rows.append((str(t), [(beside(f"{error:.1f}", paper[label]["tasks"].get(int(t))), error > PASS_ERROR)
                              for label, error in zip(labels, errors)]))
    means = [beside(f"{columns[label]['mean_test_error']:.1f}", paper[label]["mean"]) for label in labels]
    failed = [beside(str(columns[label]["failed_tasks"]), paper[label]["failed"], 0) for label in labels]
    return rows, means, failed


def results_markdown(summary: dict) -> str:
    labels, spec = summary["configurations"], summary["spec"]
    rows, means, failed = matrix(summary)
    lines = [f"Test error (%) of the restart with the lowest {spec['select']} error, best of {spec['restarts']}"
             + ("; the paper's figures in brackets." if has_paper(summary) else
                "; the paper has no figures for these data." if spec.get("preset") else "."), "",
             "| task | " + " | ".join(labels) + " |", "| ---: |" + " ---: |" * len(labels)]
    lines += [f"| {t} | " + " | ".join(text for text, _ in cells) + " |" for t, cells in rows]
    lines.append("| **mean** | " + " | ".join(f"**{c}**" for c in means) + " |")
    lines.append(f"| **failed (> {PASS_ERROR:g}%)** | " + " | ".join(f"**{c}**" for c in failed) + " |")
    if has_paper(summary) and not any(column["tasks"] for column in paper_columns(summary).values()):
        lines += ["", "The paper gives only the mean error and the failed tasks here, over all its tasks."]
    return "\n".join(lines) + "\n"
