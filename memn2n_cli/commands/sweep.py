"""`memn2n sweep TASK`: best-of-N restarts over a grid of configurations (the paper's Tables 1 and 2)."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Annotated

import typer

from memn2n_cli.cli import app, command, stderr, stdout
from memn2n_cli.commands.options import DataDir, Json
from memn2n_cli.errors import UserError


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
@command
def sweep(
    ctx: typer.Context,
    task_name: Annotated[str, typer.Argument(metavar="TASK", help="A registered task (see `memn2n tasks`).")],
    out: Annotated[Path, typer.Option(help="Sweep directory; run the same command again to complete it.")],
    task: Annotated[list[str] | None, typer.Option("--task", "-t", help="bAbI task number, repeatable, or 'all'. [default: all]")] = None,
    grid: Annotated[list[str] | None, typer.Option(help="OPTION=V1,V2,... (repeatable): every combination is a configuration; "
                                                   "one value fixes an option, e.g. --grid epochs=50.")] = None,
    restarts: Annotated[int, typer.Option(min=1, help="Restarts per task and configuration.")] = 10,
    joint: Annotated[bool, typer.Option(help="One model for all the tasks given (d=50, 60 epochs, halving every 15).")] = False,
    preset: Annotated[str | None, typer.Option(help="table1: the paper's nine MemN2N columns of Table 1 (BoW, PE, PE LS, PE LS RN, "
                                               "1/2/3 hops PE LS joint, PE LS RN joint, PE LS LW joint), laid out beside its figures.")] = None,
    column: Annotated[list[str] | None, typer.Option(help="With --preset: one of its columns to train, by name "
                                                     "(repeatable), e.g. --column 'PE LS RN'. [default: all]")] = None,
    select: Annotated[str | None, typer.Option(help="bAbI: keep the restart with the lowest train (the paper's rule; default) "
                                               "or valid error. Language models: by validation perplexity, always.")] = None,
    seed: Annotated[int, typer.Option(help="Restart r uses seed + r.")] = 0,
    backend: Annotated[str, typer.Option(help="local (a pool of processes) or ray (Ray tasks on the cluster ray.init finds).")] = "local",
    workers: Annotated[int, typer.Option(min=0, help="Processes of the local backend; 0 = one per CPU core.")] = 0,
    data_dir: DataDir = None,
    json_output: Json = False,
) -> None:
    """Train every configuration x task x restart and print a Table 1-style matrix of the selected
    restarts; for a language model (ptb, text8), Table 2's rows: `memn2n sweep ptb --grid hops=2,3,4,5,6,7`.

    Any model or training option of `memn2n train` (--epochs 20, --no-linear-start, --encoding bow, ...)
    fixes that option for every configuration, as a one-value --grid does."""
    from memn2n_cli.sweep import SweepSpec, run_sweep
    from tasks import get_task
    from memn2n_cli.runs import qa_task

    if backend not in ("local", "ray"):
        raise UserError("--backend is local or ray")
    if get_task(task_name).kind == "lm":
        if task or joint or preset or select not in (None, "valid"):
            raise UserError("a language-model sweep takes no --task, --joint or --preset, and selects by validation perplexity")
        _sweep_language_model(task_name, out, grid or [], ctx.args, restarts, seed, backend, workers or os.cpu_count() or 1,
                              data_dir, json_output)
        return
    select = select or "train"
    if select not in ("train", "valid"):
        raise UserError("--select is train or valid")
    qa = qa_task(task_name)
    task_ids = qa.parse_task_ids(task or [], default="all")
    if joint and len(task_ids) < 2:
        raise UserError("--joint needs at least two tasks (e.g. --task all)")
    options = _grid_and_options(grid or [], ctx.args)
    presets = qa.presets()
    if column and preset is None:
        raise UserError("--column names a column of a --preset")
    if preset is not None:
        if preset not in presets:
            raise UserError(f"--preset is {' or '.join(presets)}, not {preset!r}")
        unknown = [name for name in column or [] if name not in presets[preset]]
        if unknown:
            raise UserError(f"--column {unknown[0]!r} is not a column of {preset}: {', '.join(presets[preset])}")
        if joint or any(len(values) > 1 for values in options.values()):
            raise UserError(f"--preset {preset} names its columns: it takes no --joint and no --grid of several values")
        chosen = [presets[preset][name] for name in column or presets[preset]]
        if len(task_ids) < 2 and any(c.get("joint") for c in chosen):
            raise UserError(f"--preset {preset} has joint columns: it needs at least two tasks (e.g. --task all)")
        clash = sorted(options.keys() & {k for column in presets[preset].values() for k in column})
        if clash:
            raise UserError(f"--preset {preset} sets --{clash[0].replace('_', '-')} for its columns itself")
    spec = SweepSpec(task=task_name, task_ids=task_ids, joint=joint, restarts=restarts, seed=seed, select=select, grid=options,
                     data_dir=str(qa.resolve_data_dir(data_dir).resolve()), preset=preset, columns=column or None)
    for _, overrides in spec.configurations():
        spec.settings(overrides)  # an impossible option value fails here, before any training
    on_trial, on_epoch, progress = _progress(spec, out)
    if progress:
        with progress:
            summary = run_sweep(spec, out, backend, workers or os.cpu_count() or 1, on_trial, on_epoch)
    else:
        summary = run_sweep(spec, out, backend, workers or os.cpu_count() or 1, on_trial, on_epoch)
    if json_output:
        print(json.dumps({k: summary[k] for k in ("configurations", "cells", "columns", "out")}))
    else:
        stdout().print(_matrix(summary))
    print(f"results in {out}/results.{{json,csv,md}}", file=sys.stderr)


def _grid_and_options(grid: list[str], args: list[str], types: dict | None = None) -> dict[str, list]:
    """--grid's values and train's options given directly, as one grid; an option in both is refused."""
    from memn2n_cli.sweep import OPTION_TYPES, parse_grid, parse_options

    varied, fixed = parse_grid(grid, types or OPTION_TYPES), parse_options(args, types or OPTION_TYPES)
    both = sorted(varied.keys() & fixed.keys())
    if both:
        raise UserError(f"--{both[0].replace('_', '-')} is given both as an option and in --grid")
    return {**varied, **fixed}


def _sweep_language_model(task_name: str, out: Path, grid: list[str], args: list[str], restarts: int, seed: int,
                          backend: str, workers: int, data_dir: Path | None, json_output: bool) -> None:
    from memn2n_cli.lm_sweep import OPTION_TYPES, LMSweepSpec, run_lm_sweep
    from tasks.lm import resolve_data_dir

    spec = LMSweepSpec(task=task_name, restarts=restarts, seed=seed, grid=_grid_and_options(grid, args, OPTION_TYPES),
                       data_dir=str(resolve_data_dir(task_name, data_dir).resolve()))
    for _, overrides in spec.configurations():
        try:
            spec.settings(overrides)  # an impossible combination fails here, before any training
        except (TypeError, ValueError) as e:
            raise UserError(f"--grid: {e}") from None

    def on_trial(result: dict, done: int, total: int) -> None:
        print(f"[{done}/{total}] {task_name} {result['label']} restart {result['restart']}: valid perplexity "
              f"{result['valid_perplexity']:.1f}, test {result['test_perplexity']:.1f}", file=sys.stderr, flush=True)

    summary = run_lm_sweep(spec, out, backend, workers, on_trial)
    if json_output:
        print(json.dumps({k: summary[k] for k in ("rows", "out")}))
    else:
        from memn2n_cli.lm_sweep import results_markdown

        stdout().print(results_markdown(summary), markup=False, highlight=False)
    print(f"results in {out}/results.{{json,csv,md}}", file=sys.stderr)


def _progress(spec, out: Path):
    """One overall bar counting the epochs of every restart, with elapsed time and an estimate of
    what is left, and the latest trial's result; plain lines off a terminal (each trial, and every
    10% of the epochs). Returns (on_trial, on_epoch, rich progress or None)."""
    from memn2n_cli.sweep import trial_file

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
    from rich.table import Table

    from memn2n_cli.runs import PASS_ERROR
    from memn2n_cli.sweep import beside, paper_columns

    labels, columns = summary["configurations"], summary["columns"]
    spec = summary["spec"]
    paper = paper_columns(summary)
    table = Table(title=f"Test error (%), best of {spec['restarts']} by {spec['select']} error"
                        f"{' (the paper in brackets)' if spec.get('preset') else ''}  ·  {summary['out']}", title_justify="left")
    table.add_column("Task", justify="right")
    for label in labels:
        table.add_column(label, justify="right")
    for t in sorted({t for label in labels for t in summary["cells"][label]}, key=int):
        cells = []
        for label in labels:
            error = summary["cells"][label][t]["test_error"]
            text = beside(f"{error:.1f}", paper[label]["tasks"].get(int(t)))
            cells.append(f"[red]{text}[/]" if error > PASS_ERROR else text)
        table.add_row(str(t), *cells)
    table.add_section()
    table.add_row("Mean", *(beside(f"{columns[label]['mean_test_error']:.1f}", paper[label]["mean"]) for label in labels))
    table.add_row(f"Failed (> {PASS_ERROR:g}%)", *(beside(str(columns[label]["failed_tasks"]), paper[label]["failed"], 0)
                                                   for label in labels))
    return table
