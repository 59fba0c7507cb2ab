"""What every sweep shares, whatever the kind of task: its options as a grid (parsed from
`--grid` and train's own options), the configurations of a grid, the sweep directory (its
settings and one file per finished trial, read back as a run's files are: `read_trial`), and
where trials run (a pool of processes, one lane of work per device, or Ray). The
question-answering sweep is in memn2n_cli/qa/sweep.py, the language model's in
memn2n_cli/lm/sweep.py."""

from __future__ import annotations

import csv
import ctypes
import io
import itertools
import json
import os
import signal
import sys
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from multiprocessing import get_context
from pathlib import Path
from typing import Callable, Iterator

import torch

from memn2n_cli.checkpoint import json_bytes, read_json, write_files, write_json
from memn2n_cli.devices import worker_devices
from memn2n_cli.errors import ArgumentError, UserError

SPEC_FILE, TRIALS = "sweep.json", "trials"
RESULTS_FILE = "results.json"  # a sweep's results: everything; results.csv and results.md beside it


def _value(key: str, text: str, types: dict[str, str], given_as: str):
    kind = types[key].split(" | ")[0]  # "int | None" -> "int"
    try:
        if kind == "bool":
            if text.lower() not in ("true", "false", "1", "0", "yes", "no"):
                raise ValueError(text)
            return text.lower() in ("true", "1", "yes")
        return {"int": int, "float": float}.get(kind, str)(text)
    except ValueError:
        raise UserError(f"{given_as}: {text!r} is not {'an' if kind == 'int' else 'a'} {kind}") from None


def _is_bool(key: str, types: dict[str, str]) -> bool:
    return types.get(key, "").startswith("bool")


def parse_grid(specs: list[str], types: dict[str, str]) -> dict[str, list]:
    """``["hops=1,2,3", "encoding=bow,pe"]`` -> {"hops": [1, 2, 3], "encoding": ["bow", "pe"]};
    ``types`` names the options a grid may set and their types (a kind's OPTION_TYPES)."""
    grid: dict[str, list] = {}
    for spec in specs:
        key, _, values = spec.partition("=")
        key = key.strip().replace("-", "_")
        if key not in types or not values:
            known = ", ".join(sorted(types))
            raise UserError(f"--grid {spec!r}: expected OPTION=V1,V2,... with OPTION one of: {known}")
        grid[key] = [_value(key, v.strip(), types, f"--grid {key}") for v in values.split(",")]
    return grid


def parse_options(args: list[str], types: dict[str, str]) -> dict[str, list]:
    """`memn2n train`'s own options given to a sweep, each fixing its option for every configuration
    as a one-value ``--grid`` does: ``["--epochs", "20", "--no-linear-start", "--encoding=bow"]`` ->
    {"epochs": [20], "linear_start": [False], "encoding": ["bow"]}."""
    fixed: dict[str, list] = {}
    rest = list(args)
    while rest:
        arg = rest.pop(0)
        name, has_value, text = arg.partition("=")
        key = name[2:].replace("-", "_") if name.startswith("--") else ""
        if not has_value and key.startswith("no_") and _is_bool(key[3:], types):
            key, text = key[3:], "false"
        elif not has_value and _is_bool(key, types):
            text = "true"
        elif not has_value and key in types:
            if not rest:
                raise UserError(f"{name} needs a value")
            text = rest.pop(0)
        if key not in types:
            known = " ".join(f"--{k.replace('_', '-')}" for k in sorted(types))
            raise UserError(f"no such option: {arg} (a sweep also takes these options of train: {known})")
        fixed[key] = [_value(key, text, types, name)]
    return fixed


def grid_and_options(grid: dict[str, list], fixed: dict[str, list]) -> dict[str, list]:
    """A sweep's options as one grid: ``grid``'s values (--grid, ``grid=``) and ``fixed``, train's
    options given to the sweep, one value each; an option in both is refused (the recipes' sweep_spec
    checks it, for the command line and the library alike)."""
    both = sorted(grid.keys() & fixed.keys())
    if both:
        raise ArgumentError(both[0], "{} is given both as an option and in the grid")
    for key, values in grid.items():  # the same trial twice, in one folder
        twice = [value for i, value in enumerate(values) if value in values[:i]]
        if twice:
            raise ArgumentError(key, f"{{}} takes {twice[0]!r} twice in the grid")
    return {**grid, **fixed}


def configurations(grid: dict[str, list]) -> list[tuple[str, dict]]:
    """(label, overrides) for every combination of a grid; the label names the options that vary."""
    keys = list(grid)
    varying = [k for k in keys if len(grid[k]) > 1]
    combos = []
    for values in itertools.product(*(grid[k] for k in keys)):
        overrides = dict(zip(keys, values))
        combos.append((",".join(f"{k}={overrides[k]}" for k in varying) or "defaults", overrides))
    return combos


def open_sweep_dir(out: Path, spec: dict) -> None:
    """Create ``out`` with the sweep's settings, or check that it holds a sweep with the same ones
    (a setting left at None is the same as one absent from a sweep.json written before it existed)."""
    out.mkdir(parents=True, exist_ok=True)
    if (out / SPEC_FILE).exists():
        def given(settings: dict) -> dict:
            return {k: v for k, v in json.loads(json.dumps(settings)).items() if v is not None}

        if given(read_json(out / SPEC_FILE)) != given(spec):
            raise UserError("holds a sweep with other settings; use the same command to complete it, or another --out", out)
    else:
        write_json(out / SPEC_FILE, spec)


def end_with_the_sweep() -> None:
    """In a worker process: have Linux send it SIGTERM when the sweep's process ends, however that
    ends (Ctrl-C, SIGTERM, kill -9), so that no worker trains on for nobody."""
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


@contextmanager
def worker_pool(processes: int) -> Iterator[ProcessPoolExecutor]:
    """The local backend's processes (spawned: each starts clean), which end with the sweep: when
    the block ends, or at once when it fails (a trial's error, Ctrl-C), so that the error is told
    without waiting, hours for a language model, for the trials beside it, which resume from their
    last checkpoint when the sweep is run again."""
    pool = ProcessPoolExecutor(processes, mp_context=get_context("spawn"), initializer=end_with_the_sweep)
    try:
        yield pool
    except BaseException:
        for process in list((pool._processes or {}).values()):  # no public way to stop a running job before 3.14
            process.terminate()
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    pool.shutdown()


def lanes(device: torch.device, workers: int) -> list[torch.device]:
    """The local backend's workers, each by the device it computes on: one per GPU for CUDA (a
    GPU trains its trial's restarts batched; more processes would only share it), else ``workers``
    on the CPU."""
    return worker_devices(device) if device.type == "cuda" else [device] * workers


def run_on_lanes(pool: ProcessPoolExecutor, lanes: list[torch.device], jobs: list[tuple[Callable, tuple]],
                 done: Callable[[int, object], None], poll: Callable[[], None] = lambda: None) -> None:
    """Run ``jobs`` (function, arguments) in ``pool``, in order, each given a free lane as
    ``device=``: one job per lane at a time. ``done(i, result)`` follows job i; ``poll()`` runs
    twice a second meanwhile. Jobs not yet started are not started after an error."""
    from concurrent.futures import FIRST_COMPLETED, wait

    free, queued, running = list(lanes), list(enumerate(jobs)), {}
    while queued or running:
        while free and queued:
            i, (function, args) = queued.pop(0)
            lane = free.pop(0)
            running[pool.submit(function, *args, device=lane)] = (i, lane)
        ready, _ = wait(running, timeout=0.5, return_when=FIRST_COMPLETED)
        poll()
        for future in ready:
            i, lane = running.pop(future)
            free.append(lane)
            done(i, future.result())


def ray_resources(device: torch.device) -> dict:
    """What a Ray task asks for: a CPU, and the GPU it computes on (Ray makes it its "cuda")."""
    return {"num_cpus": 1, "num_gpus": 1 if device.type == "cuda" else 0}


def start_ray():
    try:
        import ray
    except ImportError:
        raise UserError("--backend ray needs Ray: pip install 'memn2n[ray]'") from None
    if not ray.is_initialized():
        ray.init(address=os.environ.get("RAY_ADDRESS"), log_to_driver=False)  # a cluster if one is set, else local
    return ray


def write_results(out: Path, summary: dict, csv_rows: list[list], markdown: str) -> None:
    """A sweep's results.json (``summary``, standard JSON: a diverged restart's perplexity is
    null), results.csv (``csv_rows``, the header first) and results.md (``markdown``), each written
    whole or not at all (a sweep stopped while writing them leaves the last ones)."""
    table = io.StringIO()
    csv.writer(table, lineterminator="\n").writerows(csv_rows)
    write_files(out, {RESULTS_FILE: json_bytes(summary, standard=True), "results.csv": table.getvalue().encode(),
                      "results.md": markdown.encode()})


def folder(out: Path, label: str) -> Path:
    """A configuration's folder: its label, with no spaces ("PE LS RN joint" -> "PE-LS-RN-joint")."""
    return out / label.replace(" ", "-")


def trial_file(out: Path, trial: dict) -> Path:
    return folder(out / TRIALS, trial["label"]) / f"{trial['name']}.json"


def read_trial(out: Path, trial: dict, fields: dict) -> dict:
    """The result in the file of ``trial``, finished, read back as a run's files are (`read_json`:
    a regular file of bounded size, JSON of bounded depth) and checked to be that trial's (its
    label, name, tasks and options) with every one of ``fields`` of its type (`check_types`): a
    damaged or hostile file is a UserError naming it and what is wrong, not a traceback in the
    sweep's summary."""
    path = trial_file(out, trial)
    result = read_json(path)
    if {key: result.get(key) for key in trial} != json.loads(json.dumps(trial)):
        raise UserError(f"is not the result of trial {trial['label']} {trial['name']}", path)
    check_types(result, fields, path)
    return result


_DESCRIBED = {int: "a whole number", float: "a number", str: "a string", list: "a list", dict: "an object"}


def check_types(value, schema, path: Path, name: str = "") -> None:
    """A UserError naming the field (as ``restarts[0].tasks[1].test_error``) of ``path`` unless
    ``value`` is what ``schema`` says: {field: schema} an object with those fields (and maybe
    others), [schema] a list of such values, a type a value of it (float: a number a float holds,
    int: a whole number; neither is True or False)."""
    kind = dict if isinstance(schema, dict) else list if isinstance(schema, list) else schema
    if isinstance(value, bool) or not isinstance(value, (int, float) if kind is float else kind) or (
            kind is float and isinstance(value, int) and abs(value) > sys.float_info.max):
        raise UserError(f"{name!r} must be {_DESCRIBED[kind]}, not {repr(value)[:40]}", path)
    if isinstance(schema, dict):
        for field, inner in schema.items():
            where = f"{name}.{field}" if name else field
            if field not in value:
                raise UserError(f"{where!r} is missing", path)
            check_types(value[field], inner, path, where)
    elif isinstance(schema, list):
        for i, item in enumerate(value):
            check_types(item, schema[0], path, f"{name}[{i}]")
