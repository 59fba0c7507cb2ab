"""`memn2n sweep ptb|text8`: Table 2's rows as one command, best of N restarts by validation.

A *trial* is one configuration (hops, memory size, ... as ``--grid`` sets them) and one restart
(seed + r): one language-model run directory, ``OUT/<configuration>/restart<r>/``, trained by
`train_lm` to the recipe's stopping rule (Sec. 5.1) and then evaluated on the test split. Per
configuration the restart with the lowest validation perplexity is kept: the paper's protocol on
PTB ("best of 10 by validation"), never the test perplexity.

Running the same command again skips finished trials and resumes the others where their run
directories checkpointed, as `memn2n train --resume` does. The local backend trains ``workers``
trials at a time in a pool of processes, each with its share of the cores (a number that depends
on ``workers`` alone, so that a resumed trial computes as it did before); the Ray backend as Ray
tasks of one thread, each writing its run directory under ``OUT``, which must be a folder every
Ray worker can reach.
"""

from __future__ import annotations

import math
import os
import sys
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Callable

import torch

from memn2n_cli import sweeps
from memn2n_cli.allocator import keep_freed_memory
from memn2n_cli.checkpoint import file_checksums, write_json, writing
from memn2n_cli.configs import LMConfig, LMTrainConfig, lm_settings
from memn2n_cli.devices import resolve_device
from memn2n_cli.lm.training import train_lm
from memn2n_cli.sweeps import (configurations, folder, lanes, open_sweep_dir, ray_resources, read_trial, run_on_lanes,
                               start_ray, trial_file, worker_pool)
from tasks import get_task

OPTION_TYPES = {f.name: f.type for f in fields(LMConfig) + fields(LMTrainConfig)
                if f.name not in ("vocab_size", "seed", "max_steps")}
# A finished trial's file, beside the trial itself (`run_trial`'s result):
RESULT_FIELDS = {"seed": int, "epochs": int, "valid_perplexity": float, "test_perplexity": float,
                 "train_seconds": float, "tokens_per_second": float, "run": str}


@dataclass
class LMSweepSpec:
    """Everything that decides an LM sweep's results; stored as sweep.json in its directory."""

    task: str
    restarts: int
    seed: int  # restart r uses seed + r
    grid: dict[str, list]
    data_dir: str
    preset: str | None = None  # a named set of configurations (the task's presets, e.g. table2)

    def configurations(self) -> list[tuple[str, dict]]:
        if self.preset is None:
            return configurations(self.grid)
        fixed = {k: v[0] for k, v in self.grid.items()}  # one value each: train's options given to the sweep
        return [(label, {**chosen, **fixed}) for label, chosen in get_task(self.task).presets()[self.preset].items()]

    def trials(self) -> list[dict]:
        return [{"label": label, "overrides": overrides, "restart": r, "name": f"restart{r}"}
                for label, overrides in self.configurations() for r in range(self.restarts)]

    def settings(self, overrides: dict, restart: int = 0) -> tuple[dict, LMTrainConfig]:
        """The model options (for LMConfig, less the vocabulary) and the recipe of one trial."""
        return lm_settings({**overrides, "seed": self.seed + restart})


def run_trial(spec: dict, trial: dict, out: str, threads: int = 0, device: str | torch.device = "auto") -> dict:
    """Train (or resume) one trial's run to the stopping rule on ``device`` and evaluate it: its figures."""
    keep_freed_memory()  # in a worker process of the pool or of Ray
    if threads:
        torch.set_num_threads(threads)
    sweep = LMSweepSpec(**spec)
    model, config = sweep.settings(trial["overrides"], trial["restart"])
    run = folder(Path(out), trial["label"]) / trial["name"]
    prefix = f"{sweep.task} {trial['label']} restart {trial['restart']}"

    def report(record: dict) -> None:
        print(f"{prefix}: epoch {record['epoch']} (lr {record['lr']:.5f}), valid perplexity "
              f"{record['valid_perplexity']:.1f}", file=sys.stderr, flush=True)

    # Trained to the stopping rule: the summary has the test perplexity (computed once, in train_lm).
    summary = train_lm(sweep.task, Path(sweep.data_dir), run, model, config, resume=True, on_epoch=report, device=device)
    return {**trial, "seed": config.seed, "epochs": summary["epochs"],
            "valid_perplexity": summary["valid_perplexity"], "test_perplexity": summary["test_perplexity"],
            "train_seconds": summary["train_seconds"], "tokens_per_second": summary["tokens_per_second"],
            "run": str(run)}


def run_lm_sweep(spec: LMSweepSpec, out: Path, backend: str = "local", workers: int = 1,
                 on_trial: Callable[[dict, int, int], None] | None = None, only: list[str] | None = None,
                 device: str | torch.device = "auto") -> dict:
    """Run every trial not yet finished in ``out`` (with ``only``, those of the configurations it
    names: a preset's cells one at a time) on ``device`` (on a GPU host, one worker per GPU;
    ``workers`` counts CPU workers); returns the summary (also written as results.*, after each
    finished trial), in which a configuration not yet trained has no figures. ``on_trial(result,
    done, total)`` follows each finished trial. ``out`` has this process as its one writer
    throughout (`writing`); each trial's run, its trainer."""
    with writing(out, "run the same `memn2n sweep` command (or memn2n.sweep call) again to go on from there"):
        return _run_lm_sweep(spec, out, backend, workers, on_trial, only, resolve_device(device))


def _run_lm_sweep(spec: LMSweepSpec, out: Path, backend: str, workers: int,
                  on_trial: Callable[[dict, int, int], None] | None, only: list[str] | None, device: torch.device) -> dict:
    open_sweep_dir(out, asdict(spec))
    trials = spec.trials()
    results = {trial_file(out, t): read_trial(out, t, RESULT_FIELDS) for t in trials if trial_file(out, t).exists()}
    pending = [t for t in trials if trial_file(out, t) not in results and (only is None or t["label"] in only)]
    files = file_checksums(get_task(spec.task).data_files(Path(spec.data_dir)))  # whether the paper's figures are for them

    def summary() -> dict:  # written after each trial: a long sweep's table and pictures as they fill in
        done = summarize(spec, [results[trial_file(out, t)] for t in trials if trial_file(out, t) in results], out, files)
        write_results(out, done)
        return done

    def finished(result: dict) -> None:
        write_json(trial_file(out, result), result)  # marks the trial done
        results[trial_file(out, result)] = result
        summary()
        if on_trial:
            on_trial(result, len(results), len(trials))

    runs, workers_of = str(out.resolve()), lanes(device, workers)
    threads = max(1, (os.cpu_count() or 1) // len(workers_of))  # the cores shared out among the processes
    if pending and backend == "ray":
        ray = start_ray()
        remote = ray.remote(**ray_resources(device))(run_trial)
        waiting = [remote.remote(asdict(spec), t, runs, 1, device=device.type) for t in pending]
        while waiting:
            ready, waiting = ray.wait(waiting, num_returns=1)
            finished(ray.get(ready[0]))
    elif min(len(workers_of), len(pending)) > 1:
        with worker_pool(min(len(workers_of), len(pending))) as pool:
            run_on_lanes(pool, workers_of[: len(pending)], [(run_trial, (asdict(spec), t, runs, threads)) for t in pending],
                         lambda i, result: finished(result))
    else:
        for trial in pending:
            finished(run_trial(asdict(spec), trial, runs, threads, device))
    return summary()


def summarize(spec: LMSweepSpec, results: list[dict], out: Path, data_files: dict[str, str]) -> dict:
    """Per configuration: its options, the selected restart (lowest validation perplexity; ties to
    the lower seed; a diverged restart, whose perplexity is not finite, last) and its figures (None
    while no restart has finished), the paper's where Table 2 has the configuration and the
    ``data_files`` (name: SHA-256) are the corpus as published (`paper_table`)."""
    paper = get_task(spec.task).paper_table(data_files)
    rows = []
    for label, overrides in spec.configurations():
        model = LMConfig(vocab_size=1, **spec.settings(overrides)[0])
        row = {"configuration": label, "dim": model.dim, "hops": model.hops, "memory_size": model.memory_size,
               "paper": paper.get((model.dim, model.hops, model.memory_size)), "restarts": 0}
        restarts = [r for r in results if r["label"] == label]
        if restarts:
            best = min(restarts, key=lambda r: (*valid_order(r["valid_perplexity"]), r["seed"]))
            valid = sorted((r["valid_perplexity"] for r in restarts), key=valid_order)
            row.update(restarts=len(restarts), selected=best["restart"], seed=best["seed"], epochs=best["epochs"],
                       valid_perplexity=best["valid_perplexity"], test_perplexity=best["test_perplexity"],
                       train_seconds=best.get("train_seconds"), valid_range=[valid[0], valid[-1]], run=best["run"])
        rows.append(row)
    return {"spec": asdict(spec), "rows": rows, "trials": results, "out": str(out)}


def valid_order(perplexity: float) -> tuple[bool, float]:
    """Where a restart's validation perplexity sorts: lowest first, a diverged restart's (not
    finite; NaN compares with nothing, so sorted() alone would leave it anywhere) last."""
    finite = math.isfinite(perplexity)
    return not finite, perplexity if finite else 0.0


def write_results(out: Path, summary: dict) -> None:
    """results.json (everything), results.csv (one row per restart), results.md (Table 2's layout)."""
    rows = [["configuration", "restart", "seed", "epochs", "valid_perplexity", "test_perplexity", "selected"]]
    selected = {(row["configuration"], row.get("selected")) for row in summary["rows"]}
    for r in summary["trials"]:
        rows.append([r["label"], r["restart"], r["seed"], r["epochs"], f"{r['valid_perplexity']:.2f}",
                     f"{r['test_perplexity']:.2f}", int((r["label"], r["restart"]) in selected)])
    sweeps.write_results(out, summary, rows, results_markdown(summary))


def results_markdown(summary: dict) -> str:
    """Table 2's layout: one row per configuration, ours beside the paper's; a row not yet trained
    says so."""
    spec = summary["spec"]
    beside = ("the paper's Table 2 (best of 10) beside it" if any(row["paper"] for row in summary["rows"])
              else "the paper has no figures for these data or configurations")
    lines = [f"{spec['task']}: perplexity of the restart with the lowest validation perplexity, best of "
             f"{spec['restarts']}; {beside}. Hours: the selected restart's training steps, on whatever else "
             "the machine ran.", "",
             "| configuration | hidden | hops | memory | valid | test | paper valid | paper test "
             "| valid, all restarts | epochs | hours |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for row in summary["rows"]:
        paper = row["paper"] or ("", "")
        ours = ["not trained yet", "", "", "", ""]
        if row["restarts"]:
            low, high = row["valid_range"]
            hours = f"{row['train_seconds'] / 3600:.2f}" if row.get("train_seconds") is not None else ""
            ours = [f"{row['valid_perplexity']:.1f}", f"{row['test_perplexity']:.1f}",
                    f"{low:.1f}-{high:.1f}", str(row["epochs"]), hours]
        lines.append(f"| {row['configuration']} | {row['dim']} | {row['hops']} | {row['memory_size']} | {ours[0]} | "
                     f"{ours[1]} | {paper[0]} | {paper[1]} | {ours[2]} | {ours[3]} | {ours[4]} |")
    return "\n".join(lines) + "\n"
