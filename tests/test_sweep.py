"""Restarts trained together, and `memn2n sweep`: selection, results files, resume, backends."""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
from pathlib import Path
from typing import Callable

import pytest
import torch

from memn2n_cli.configs import EVAL_BATCH, TrainConfig
from memn2n_cli.errors import UserError
from memn2n_cli.history import read_history
from memn2n_cli.qa.restarts import fit_restarts
from memn2n_cli.qa.runs import ModelOptions, build_model, prepare
from memn2n_cli.qa.sweep import OPTION_TYPES, SweepSpec, has_paper, paper_columns, results_markdown, split_restarts
from memn2n_cli.sweeps import parse_grid, parse_options
from memn2n_cli.qa.training import fit
from tasks.babi import BabiTask, english_size
from tests.conftest import assert_one_line_error, published
from tests.test_fuzz import deadline

QUICK = ["--epochs", "2", "--ls-epochs", "1"]  # train's options, fixed for every configuration


@pytest.fixture(scope="module")
def task1(en_dir):
    return prepare("babi", [1], en_dir, ModelOptions(), TrainConfig(), torch.device("cpu"))


@pytest.mark.parametrize("overrides", [{"epochs": 2, "ls_epochs": 2},
                                       {"epochs": 2, "ls_epochs": 6, "ls_patience": 1, "random_noise": 0.0}])
def test_restarts_together_equal_restarts_alone(task1, overrides):
    config = TrainConfig(**overrides)
    seeds = [3, 7, 11]
    data = task1.encoded
    alone, histories = [], []
    for seed in seeds:
        model = build_model(task1, seed, torch.device("cpu"))
        histories.append(fit(model, data["train"], data["valid"], TrainConfig(**{**vars(config), "seed": seed})))
        alone.append(model)
    together = [build_model(task1, seed, torch.device("cpu")) for seed in seeds]
    batched = fit_restarts(together, data["train"], data["valid"], config, seeds)
    for a, b, h1, h2 in zip(alone, together, histories, batched):
        for name, value in a.state_dict().items():
            torch.testing.assert_close(b.state_dict()[name], value, atol=1e-4, rtol=1e-4)
        assert [r["phase"] for r in h1] == [r["phase"] for r in h2]
        assert [r["train_error"] for r in h1] == pytest.approx([r["train_error"] for r in h2], abs=0.2)
        assert [r["train_loss"] for r in h1] == pytest.approx([r["train_loss"] for r in h2], rel=1e-4)
    assert all(torch.all(m.embedding[:, 0] == 0) for m in together)  # the nil word stays zero
    assert len({m.embedding.sum().item() for m in together}) == 3  # three different models


def test_restarts_validate_like_fit_across_evaluation_batches(en_dir):
    """600 held-out questions: more than one EVAL_BATCH, so restarts validate in two passes (512 + 88);
    every restart's validation loss and error, epoch by epoch, are what `fit` reports for its seed."""
    config = TrainConfig(epochs=2, ls_epochs=1, validation_fraction=0.6)
    task = prepare("babi", [1], en_dir, ModelOptions(), config, torch.device("cpu"))
    data, seeds = task.encoded, [3, 7]
    assert len(data["valid"]) == 600 > EVAL_BATCH
    together = [build_model(task, seed, torch.device("cpu")) for seed in seeds]
    batched = fit_restarts(together, data["train"], data["valid"], config, seeds)
    for seed, history in zip(seeds, batched):
        alone = fit(build_model(task, seed, torch.device("cpu")), data["train"], data["valid"],
                    TrainConfig(**{**vars(config), "seed": seed}))
        assert [r["valid_error"] for r in history] == pytest.approx([r["valid_error"] for r in alone], abs=0.5)
        assert [r["valid_loss"] for r in history] == pytest.approx([r["valid_loss"] for r in alone], rel=1e-3)


def test_parse_grid():
    assert parse_grid(["hops=1,2,3", "encoding=bow,pe", "linear-start=false,true", "lr=0.02"], OPTION_TYPES) == {
        "hops": [1, 2, 3], "encoding": ["bow", "pe"], "linear_start": [False, True], "lr": [0.02]}
    for bad in (["hops"], ["colour=red"], ["hops=two"], ["temporal=maybe"], ["seed=1,2"]):
        with pytest.raises(UserError):
            parse_grid(bad, OPTION_TYPES)


def test_parse_options():
    """train's options given to a sweep, each as a one-value grid."""
    assert parse_options(["--epochs", "20", "--no-linear-start", "--encoding=bow", "--relu", "--random-noise", "0"],
                         OPTION_TYPES) == {
        "epochs": [20], "linear_start": [False], "encoding": ["bow"], "relu": [True], "random_noise": [0.0]}
    assert parse_options([], OPTION_TYPES) == {}
    for bad, fragment in ((["--colour", "red"], "no such option: --colour"), (["--epochs"], "--epochs needs a value"),
                          (["--epochs", "x"], "--epochs: 'x' is not an int"), (["stray"], "no such option: stray"),
                          (["--seed", "1"], "no such option: --seed")):  # the sweep's own --seed is seed + r
        with pytest.raises(UserError, match=fragment):
            parse_options(bad, OPTION_TYPES)


def test_table1_preset_has_the_papers_columns():
    """Each column of Table 1 as the paper defines it (Sec. 4, Table 1's key), written out in full
    here: encoding, linear start, random noise, hops, tying, and joint training with d = 50 and 60
    epochs halved every 15. An option given to the sweep (here --lr) applies to every column."""
    spec = SweepSpec(task="babi", task_ids=list(range(1, 21)), joint=False, restarts=10, seed=0, select="train",
                     grid={"lr": [0.02]}, data_dir="unused", preset="table1")
    per_task = dict(dim=20, epochs=100, anneal_every=25)
    joint = dict(dim=50, epochs=60, anneal_every=15)
    expected = {  # name: (encoding, linear_start, random_noise, hops, tying, schedule)
        "BoW": ("bow", False, 0.0, 3, "adjacent", per_task),
        "PE": ("pe", False, 0.0, 3, "adjacent", per_task),
        "PE LS": ("pe", True, 0.0, 3, "adjacent", per_task),
        "PE LS RN": ("pe", True, 0.1, 3, "adjacent", per_task),
        "1 hop PE LS joint": ("pe", True, 0.0, 1, "adjacent", joint),
        "2 hops PE LS joint": ("pe", True, 0.0, 2, "adjacent", joint),
        "3 hops PE LS joint": ("pe", True, 0.0, 3, "adjacent", joint),
        "PE LS RN joint": ("pe", True, 0.1, 3, "adjacent", joint),
        "PE LS LW joint": ("pe", True, 0.0, 3, "layerwise", joint),
    }
    assert [label for label, _ in spec.configurations()] == list(expected)
    for label, overrides in spec.configurations():
        options, config = spec.settings(overrides)
        encoding, linear_start, noise, hops, tying, schedule = expected[label]
        assert (options.encoding, config.linear_start, config.random_noise, options.hops, options.tying) == \
            (encoding, linear_start, noise, hops, tying), label
        assert (options.dim, config.epochs, config.anneal_every) == tuple(schedule.values()), label
        assert options.temporal and not options.relu and config.lr == 0.02, label
    trials = spec.trials()
    assert len(trials) == 4 * 20 + 5  # a trial per task in the per-task columns, one in each joint column
    assert {t["name"] for t in trials if "joint" in t["label"]} == {"joint"}
    some = SweepSpec(**{**vars(spec), "columns": ["PE LS LW joint", "BoW"]})  # in the paper's order
    assert [label for label, _ in some.configurations()] == ["BoW", "PE LS LW joint"] and len(some.trials()) == 21


def test_a_preset_sweeps_columns_are_the_same_sweep_in_any_order(en_dir):
    """`--column B --column A` is the sweep `--column A --column B` is: its folder takes either."""
    from memn2n_cli.recipes.qa import sweep_spec

    def spec(*columns):
        return sweep_spec("babi", tasks=["1", "4"], grid={}, fixed={}, restarts=1, joint=False, preset="table1",
                          column=list(columns), select=None, seed=0, data_dir=en_dir)

    assert spec("PE LS LW joint", "BoW") == spec("BoW", "PE LS LW joint")
    assert spec("PE LS LW joint", "BoW").columns == ["BoW", "PE LS LW joint"]


@pytest.mark.slow
def test_table1_preset_trains_its_columns_and_lays_results_out_as_table_1(cli, tmp_path, en_dir, en_is_upstream):
    """Two tasks, one restart, one epoch: every column trains with its own options, and results.md
    shows the paper's figure beside each cell, its mean and failures over the same two tasks (on
    upstream's files; on the simulator's, none)."""
    out = tmp_path / "table1"
    result = cli("sweep", "babi", "--preset", "table1", "--task", "1", "--task", "4", "--restarts", "1", "--epochs", "1",
                 "--ls-epochs", "1", "--out", out, "--data-dir", en_dir, "--workers", "2", "--json")
    assert result.exit_code == 0, result.stderr
    saved = {path.parent.relative_to(out).as_posix(): json.loads(path.read_text())
             for path in out.glob("*/*/config.json") if path.parts[-3] != "trials"}
    assert len(saved) == 4 * 2 + 5
    assert saved["BoW/qa4"]["model"]["encoding"] == "bow" and not saved["BoW/qa4"]["training"]["linear_start"]
    assert saved["PE-LS/qa1"]["training"]["random_noise"] == 0 and saved["PE-LS-RN/qa1"]["training"]["random_noise"] == 0.1
    assert saved["1-hop-PE-LS-joint/joint"]["model"]["hops"] == 1 and saved["PE-LS-LW-joint/joint"]["model"]["tying"] == "layerwise"
    assert {c["model"]["dim"] for name, c in saved.items() if name.endswith("joint")} == {50}
    assert {c["training"]["epochs"] for c in saved.values()} == {1}  # --epochs applies to every column
    table = (out / "results.md").read_text().splitlines()
    assert table[2] == "| task | " + " | ".join(BabiTask.TABLE_1) + " |"
    summary = json.loads(result.stdout)
    row4 = table[5].split(" | ")
    bow4, joint4, mean, failed = (" (32.0)", " (17.5)", " (16.3)", " (1)") if en_is_upstream else ("", "", "", "")
    assert row4[1] == f"{summary['cells']['BoW']['4']['test_error']:.1f}{bow4}"  # the paper's BoW on task 4
    assert row4[-1] == f"{summary['cells']['PE LS LW joint']['4']['test_error']:.1f}{joint4} |"
    assert f"**{summary['columns']['BoW']['mean_test_error']:.1f}{mean}**" in table[6]  # (0.6 + 32.0) / 2
    assert f"**{summary['columns']['BoW']['failed_tasks']}{failed}**" in table[7]
    assert table[0].endswith("; the paper's figures in brackets." if en_is_upstream else "; the paper has no figures for these data.")


def test_paper_figures_beside_a_whole_column_and_on_10k():
    """With all 20 tasks the printed mean and failures (2 hops: 11, its task 10 printed as 5.0);
    on 10k, the printed 10k figures and no per-task ones; on other data, none."""
    labels = list(BabiTask.TABLE_1)
    cells = {label: {str(t): {"test_error": 1.0} for t in range(1, 21)} for label in labels}
    spec = {"task": "babi", "preset": "table1", "data_dir": "/data/en", "select": "train", "restarts": 10}
    summary = {"spec": spec, "configurations": labels, "cells": cells, "data_files": published("babi_v1.2.sha256", "en/"),
               "columns": {label: {"mean_test_error": 1.0, "failed_tasks": 0} for label in labels}}
    one_k = paper_columns(summary)
    assert (one_k["PE LS RN"]["mean"], one_k["PE LS RN"]["failed"], one_k["PE LS RN"]["tasks"][3]) == (13.9, 11, 40.3)
    assert one_k["2 hops PE LS joint"]["failed"] == 11
    ten_k = {**summary, "data_files": published("babi_v1.2.sha256", "en-10k/")}
    assert paper_columns(ten_k)["PE LS RN"] == {"tasks": {}, "mean": 6.6, "failed": 4}
    assert "| **1.0 (6.6)** |" in results_markdown(ten_k)
    assert paper_columns({**summary, "spec": {**spec, "preset": None}})["BoW"] == {"tasks": {}, "mean": None, "failed": None}
    none = {"tasks": {}, "mean": None, "failed": None}
    before = {k: v for k, v in summary.items() if k != "data_files"}  # written before sweeps recorded their files
    for other in ({**summary, "data_files": published("babi_v1.2.sha256", "hn/")}, {**summary, "data_files": {}}, before):
        assert paper_columns(other)["BoW"] == none
    assert "the paper has no figures for these data." in results_markdown({**summary, "data_files": {}})
    assert not has_paper({**summary, "data_files": {}}) and has_paper(summary) and has_paper(ten_k)


def test_the_papers_data_is_known_by_its_files_checksums():
    """Table 1's data: upstream's English files, 1k or 10k, as each of its folders has them (the
    en-valid folders' training files are 1k's and 10k's less the validation questions). Any other
    file (another language, the shuffled words, a file edited or generated) makes it not the paper's."""
    en, en_10k = published("babi_v1.2.sha256", "en/"), published("babi_v1.2.sha256", "en-10k/")
    assert english_size(en) == "1k" and english_size(en_10k) == "10k"
    assert english_size(published("babi_v1.1.sha256", "en/")) == "1k"  # the paper's version: its task 16 is not v1.2's
    assert english_size(published("babi_v1.2.sha256", "en-valid/")) == "1k"
    assert english_size(published("babi_v1.2.sha256", "en-valid-10k/")) == "10k"
    for folder in ("hn/", "hn-10k/", "shuffled/", "shuffled-10k/"):
        assert english_size(published("babi_v1.2.sha256", folder)) is None, folder
    train = "qa1_single-supporting-fact_train.txt"
    assert english_size({**en, train: en_10k[train]}) is None  # 10k training beside 1k's
    assert english_size({**en, train: "0" * 64}) is None
    assert english_size({"qa1_single-supporting-fact_test.txt": en["qa1_single-supporting-fact_test.txt"]}) is None  # both sizes'
    assert english_size({}) is None


@pytest.fixture(scope="module")
def small_sweep(tmp_path_factory, en_dir):
    """2 configurations x 2 tasks x 3 restarts, 2 epochs each, with the local pool of 2 processes."""
    from typer.testing import CliRunner

    from memn2n_cli.cli import app

    out = tmp_path_factory.mktemp("sweeps") / "small"
    args = ["sweep", "babi", "--task", "1", "--task", "4", "--restarts", "3", *QUICK, "--grid", "hops=1,2",
            "--out", str(out), "--data-dir", str(en_dir), "--workers", "2", "--json"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, (result.stderr, result.exception)
    return out, args, json.loads(result.stdout)


def test_sweep_selects_the_lowest_training_error_and_writes_results(small_sweep):
    out, _, summary = small_sweep
    assert summary["configurations"] == ["hops=1", "hops=2"]
    with (out / "results.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 2 * 2 * 3
    for label in ("hops=1", "hops=2"):
        for task in ("1", "4"):
            restarts = [r for r in rows if r["configuration"] == label and r["task"] == task]
            assert [int(r["seed"]) for r in restarts] == [0, 1, 2]
            chosen = next(r for r in restarts if r["selected"] == "1")
            ranked = min(restarts, key=lambda r: (float(r["train_error"]), float(r["valid_error"])))
            assert (chosen["train_error"], chosen["valid_error"]) == (ranked["train_error"], ranked["valid_error"])
            assert summary["cells"][label][task]["test_error"] == pytest.approx(float(chosen["test_error"]), abs=0.01)
    means = summary["columns"]["hops=1"]["mean_test_error"]
    assert means == pytest.approx(sum(summary["cells"]["hops=1"][t]["test_error"] for t in ("1", "4")) / 2)
    assert "| **mean** |" in (out / "results.md").read_text()


def test_selected_models_are_ordinary_runs(cli, small_sweep, en_dir, tmp_path):
    out, _, summary = small_sweep
    cell = summary["cells"]["hops=2"]["4"]
    evaluated = cli("eval", out / "hops=2", "--json", "--data-dir", en_dir)
    assert evaluated.exit_code == 0
    row = next(r for r in json.loads(evaluated.stdout)["tasks"] if r["task"] == 4)
    assert row["test_error"] == pytest.approx(cell["test_error"])
    # The recorded seed reproduces the restart with `memn2n train`, trained alone.
    again = cli("train", "babi", "--task", "4", "--hops", "2", "--epochs", "2", "--ls-epochs", "1",
                "--seed", cell["seed"], "--data-dir", en_dir, "--out", tmp_path / "again", "--json")
    assert json.loads(again.stdout)["tasks"][0]["test_error"] == pytest.approx(cell["test_error"], abs=0.5)
    assert (out / "hops=2" / "qa4" / "config.json").exists()
    for model in out.glob("hops=*/qa*"):  # the kept restart's per-epoch lines, as its metrics.json holds them
        held = json.loads((model / "metrics.json").read_text())["history"]
        assert [{k: v for k, v in line.items() if k != "seconds"} for line in read_history(model)] == held
    story = tmp_path / "s.txt"
    story.write_text("Mary moved to the bathroom.\nWhere is Mary?\n")
    assert cli("predict", story, "-c", out / "hops=1" / "qa1").exit_code == 0


def test_sweep_resumes_where_it_stopped(cli, small_sweep):
    out, args, summary = small_sweep
    trials = sorted((out / "trials").glob("*/*.json"))
    assert len(trials) == 4
    kept = {p: p.stat().st_mtime_ns for p in trials}
    trials[0].unlink()  # as if that trial had been interrupted
    result = cli(*args[:-1])
    assert result.exit_code == 0, result.stderr
    assert result.stderr.count("best of 3") == 1  # only the missing trial was trained again
    assert all(p.stat().st_mtime_ns == t for p, t in kept.items() if p != trials[0]) and trials[0].exists()
    assert json.loads((out / "results.json").read_text())["columns"] == summary["columns"]
    assert_one_line_error(cli(*args[:-1], "--restarts", "4"), "other settings")


def test_joint_sweep_and_validation_selection(cli, tmp_path, en_dir):
    """A joint sweep is one trial: with two workers its restarts train in two processes, and the
    results are those of one process training them all, exactly (each restart is computed alone)."""
    trials = {}
    for workers in ("1", "2"):
        out = tmp_path / f"joint-{workers}"
        result = cli("sweep", "babi", "--task", "1", "--task", "2", "--joint", "--restarts", "3", *QUICK,
                     "--select", "valid", "--out", out, "--data-dir", en_dir, "--workers", workers, "--json")
        assert result.exit_code == 0, result.stderr
        assert sorted(json.loads(result.stdout)["cells"]["defaults"]) == ["1", "2"]
        trials[workers] = trial = json.loads((out / "trials" / "defaults" / "joint.json").read_text())
        ranks = [(r["mean"]["valid_error"], r["mean"]["train_error"]) for r in trial["restarts"]]
        assert trial["selected"] == ranks.index(min(ranks))
        saved = json.loads((out / "defaults" / "joint" / "config.json").read_text())
        assert saved["model"]["dim"] == 50 and saved["training"]["seed"] == trial["restarts"][trial["selected"]]["seed"]
    one, two = trials["1"]["restarts"], trials["2"]["restarts"]
    assert [r["seed"] for r in two] == [0, 1, 2]
    assert one == two


def test_restarts_split_into_parts():
    assert split_restarts(10, 2) == [[0, 1, 2, 3, 4], [5, 6, 7, 8, 9]]
    assert split_restarts(10, 3) == [[0, 1, 2], [3, 4, 5], [6, 7, 8, 9]]
    assert split_restarts(2, 4) == [[0], [1]]
    assert split_restarts(3, 1) == [[0, 1, 2]]


@pytest.mark.slow
def test_ray_backend_on_a_local_instance_with_two_workers(cli, tmp_path, en_dir, small_sweep):
    import shutil
    import tempfile

    ray = pytest.importorskip("ray", reason="the Ray backend is the optional extra memn2n[ray]")
    # Ray's session folder in one of our own, removed afterwards (by default /tmp/ray/session_*
    # stays); a short path, as Ray's sockets live in it (at most 107 characters).
    session = tempfile.mkdtemp(prefix="memn2n-ray-")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, _temp_dir=session)
    try:
        out = tmp_path / "ray"
        result = cli("sweep", "babi", "--task", "1", "--task", "4", "--restarts", "3", *QUICK, "--grid", "hops=1,2",
                     "--out", out, "--data-dir", en_dir, "--backend", "ray", "--json")
    finally:
        ray.shutdown()
        shutil.rmtree(session, ignore_errors=True)
    assert result.exit_code == 0, result.stderr
    local = small_sweep[2]["cells"]
    for label, cells in json.loads(result.stdout)["cells"].items():
        for task, cell in cells.items():
            assert cell["seed"] == local[label][task]["seed"]
            assert cell["test_error"] == pytest.approx(local[label][task]["test_error"], abs=0.5)


@pytest.mark.parametrize("args, fragment", [
    (["--grid", "hops=two"], "not an int"),
    (["--grid", "colour=red"], "expected OPTION=V1,V2"),
    (["--select", "test"], "--select"),
    (["--task", "1", "--joint"], "--joint needs"),
    (["--grid", "encoding=pe,cnn"], "--encoding is pe or bow"),
    (["--epochs", "x"], "--epochs: 'x' is not an int"),
    (["--colour", "red"], "no such option: --colour"),
    (["--grid", "epochs=2,3", "--epochs", "4"], "--epochs is given both"),
    (["--grid", "encoding=pe,bow,pe"], "--encoding takes 'pe' twice in the grid"),
    (["--no-temporal"], "--random-noise perturbs temporal encoding"),
    (["--preset", "table2"], "--preset is table1"),
    (["--preset", "table1", "--task", "1"], "needs at least two tasks"),
    (["--preset", "table1", "--hops", "2"], "sets --hops for its columns itself"),
    (["--preset", "table1", "--grid", "lr=0.01,0.02"], "no --grid of several values"),
    (["--preset", "table1", "--column", "PE LS RR"], "--column 'PE LS RR' is not a column of table1"),
    (["--column", "PE"], "--column names a column of a --preset"),
])
def test_sweep_bad_options(cli, tmp_path, en_dir, args, fragment):
    assert_one_line_error(cli("sweep", "babi", "--out", tmp_path / "s", "--data-dir", en_dir, *args), fragment)


def test_typer_errors_are_one_line_too(cli):
    assert_one_line_error(cli("train", "babi", "--hops", "0"), "--hops")
    assert_one_line_error(cli("train", "babi", "--no-such-option"), "No such option")


@pytest.mark.parametrize("signal_name", ["SIGINT", "SIGTERM", "SIGKILL"])
def test_a_sweep_stopped_leaves_no_process_behind(en_dir, tmp_path, signal_name):
    """Ctrl-C, SIGTERM (kill, a scheduler's time limit) or kill -9 to `memn2n sweep` ends its worker
    processes and its manager too, where four processes trained on for nobody. Ctrl-C and SIGTERM
    end it quietly (exit code 130 or 143), where SIGTERM left Python's warning of leaked semaphores."""
    import os
    import signal
    import subprocess
    import sys
    import time

    command = [sys.executable, "-m", "memn2n_cli", "sweep", "babi", "--task", "1", "--task", "2", "--data-dir", str(en_dir),
               "--out", str(tmp_path / "sweep"), "--restarts", "4", "--workers", "2", "--epochs", "500"]
    with (tmp_path / "stderr").open("w") as errors:
        sweep = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=errors)
    children: list[int] = []
    for _ in range(300):  # until both workers run (the spawned processes import torch first)
        time.sleep(0.1)
        children = [int(p) for p in subprocess.run(["ps", "--ppid", str(sweep.pid), "-o", "pid="],
                                                   capture_output=True, text=True).stdout.split()]
        if len(children) >= 4:  # the resource tracker, the manager and two workers
            break
    assert len(children) >= 4, children
    os.kill(sweep.pid, getattr(signal, signal_name))
    sweep.wait(timeout=30)
    alive = children
    for _ in range(100):
        alive = [p for p in alive if subprocess.run(["ps", "-p", str(p)], capture_output=True).returncode == 0]
        if not alive:
            break
        time.sleep(0.1)
    assert not alive
    if signal_name != "SIGKILL":
        assert sweep.returncode == 128 + getattr(signal, signal_name)
        assert "Warning" not in (tmp_path / "stderr").read_text()


def _train_for_a_minute(pid_file: str, device) -> None:
    """A trial of the pool test below: says where it runs, then trains (sleeps) a minute."""
    import os
    import time

    Path(pid_file).write_text(str(os.getpid()))
    time.sleep(60)


def _fail_once_the_other_runs(pid_file: str, device) -> None:
    import time

    while not Path(pid_file).exists():
        time.sleep(0.05)
    raise UserError("this trial's data is damaged")


def test_a_trial_failing_in_a_pool_is_told_at_once_and_the_trial_beside_it_stopped(tmp_path):
    """A trial's error ends the pool at once: the sweep does not wait for the trials beside it
    (hours for a language model, which resume from their last checkpoint) before saying it."""
    import subprocess
    import time

    from memn2n_cli.sweeps import run_on_lanes, worker_pool

    pid_file, started = str(tmp_path / "pid"), time.monotonic()
    with pytest.raises(UserError, match="this trial's data is damaged"):
        with worker_pool(2) as pool:
            run_on_lanes(pool, [torch.device("cpu")] * 2, [(_train_for_a_minute, (pid_file,)), (_fail_once_the_other_runs, (pid_file,))],
                         lambda i, result: None)
    assert time.monotonic() - started < 45  # the first trial alone takes 60 s, after its start-up
    other = int(Path(pid_file).read_text())
    for _ in range(50):
        state = subprocess.run(["ps", "-p", str(other), "-o", "stat="], capture_output=True, text=True).stdout.strip()
        if not state or state.startswith("Z"):
            break
        time.sleep(0.1)
    assert not state or state.startswith("Z"), f"the trial beside it still runs ({state})"


def test_a_sweep_killed_and_run_again_gives_the_uninterrupted_numbers(en_dir, tmp_path):
    """kill -9 once a trial has finished; the same command again completes the others, and every
    cell, restart and seed is what a sweep never interrupted gives (the compiled kernel computes
    a restart the same bits whichever restarts share its steps)."""
    import os
    import signal
    import subprocess
    import sys
    import time

    def command(out, workers: int = 2):
        return [sys.executable, "-m", "memn2n_cli", "sweep", "babi", "--task", "1", "--task", "4", "--task", "6",
                "--data-dir", str(en_dir), "--out", str(out), "--restarts", "3", "--workers", str(workers), "--json",
                "--epochs", "6", "--ls-epochs", "2"]

    killed = subprocess.Popen(command(tmp_path / "killed"), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    trials = tmp_path / "killed" / "trials"
    for _ in range(1200):
        time.sleep(0.05)
        if any(trials.rglob("*.json")) or killed.poll() is not None:
            break
    assert killed.poll() is None, "the sweep ended before it could be killed"
    os.kill(killed.pid, signal.SIGKILL)
    killed.wait()
    assert 1 <= len(list(trials.rglob("*.json"))) < 3  # some trials done, not all
    # The uninterrupted sweep in one process (a pool of two starts in seconds): the same bits.
    again, whole = (json.loads(subprocess.run(args, capture_output=True, text=True, check=True).stdout)
                    for args in (command(tmp_path / "killed"), command(tmp_path / "whole", workers=1)))

    def figures(summary):
        return {label: {task: {k: v for k, v in cell.items() if k != "run"} for task, cell in cells.items()}
                for label, cells in summary["cells"].items()}

    assert figures(again) == figures(whole)


# A damaged or hostile sweep folder, run again -----------------------------------------------------

TRIAL = "trials/hops=1/qa1.json"  # of small_sweep: a trial of tasks [1], with 3 restarts


def run_again(cli, small_sweep, tmp_path, damage: Callable[[Path], None]):
    """The small sweep copied, ``damage`` done to the copy, and the same command run on it (every
    trial is done: it reads the trials' files back, and trains nothing)."""
    out, args, _ = small_sweep
    copy = tmp_path / "sweep"
    shutil.copytree(out, copy)
    damage(copy)
    return cli(*[str(copy) if arg == str(out) else arg for arg in args if arg != "--json"])


def edit_trial(change: Callable[[dict], None]) -> Callable[[Path], None]:
    def damage(sweep: Path) -> None:
        result = json.loads((sweep / TRIAL).read_text())
        change(result)
        (sweep / TRIAL).write_text(json.dumps(result))
    return damage


def put(path: str, make: Callable[[Path], None]) -> Callable[[Path], None]:
    """Damage: the file ``path`` of the sweep removed, and ``make(path)`` puts something else there."""
    def damage(sweep: Path) -> None:
        (sweep / path).unlink()
        make(sweep / path)
    return damage


def cut(path: str, keep: float) -> Callable[[Path], None]:
    def damage(sweep: Path) -> None:
        text = (sweep / path).read_bytes()
        (sweep / path).write_bytes(text[: int(len(text) * keep)])
    return damage


def first_row(result: dict) -> dict:
    return result["restarts"][0]["tasks"][0]


@pytest.mark.parametrize("change, fragment", [
    (lambda r: r.update(selected="0"), "'selected' must be a whole number, not '0'"),
    (lambda r: r.update(selected=3), "'selected' is 3, not one of its 3 restarts"),
    (lambda r: r.update(restarts={}), "'restarts' must be a list, not {}"),
    (lambda r: r["restarts"][1].update(seed=None), "'restarts[1].seed' must be a whole number, not None"),
    (lambda r: first_row(r).update(test_error="8.2"), "'restarts[0].tasks[0].test_error' must be a number, not '8.2'"),
    (lambda r: first_row(r).update(task=True), "'restarts[0].tasks[0].task' must be a whole number, not True"),
    (lambda r: first_row(r).pop("valid_error"), "'restarts[0].tasks[0].valid_error' is missing"),
    (lambda r: r["restarts"][2].pop("mean"), "'restarts[2].mean' is missing"),
    (lambda r: r.update(train_seconds=10**400), "'train_seconds' must be a number"),  # no float holds it
    (lambda r: r["restarts"][0].update(tasks=[]), "'restarts[0].tasks' are not the rows of tasks [1]"),
    (lambda r: r.update(label="hops=2"), "is not the result of trial hops=1 qa1"),
    (lambda r: r.update(tasks=[4]), "is not the result of trial hops=1 qa1"),
    (lambda r: r["overrides"].update(hops="1"), "is not the result of trial hops=1 qa1"),
])
def test_a_trial_file_of_other_types_is_one_line_naming_it(cli, small_sweep, tmp_path, change, fragment):
    """Issue 29: a sweep run again reads its finished trials' files back; one with a field of
    another type, missing, or out of range, or the result of another trial, was a traceback
    (KeyError, TypeError, IndexError in its summary) or a summary of nonsense. Now: one line
    naming the file and the field, exit 2."""
    result = run_again(cli, small_sweep, tmp_path, edit_trial(change))
    assert_one_line_error(result, f"{tmp_path / 'sweep' / TRIAL}: ", fragment)


def test_a_language_model_trial_file_of_other_types_is_refused_naming_it(tmp_path, small_ptb):
    """The language model's sweep reads its trials back the same way (`run_lm_sweep` on a sweep
    whose one trial is done: it summarizes, and trains nothing)."""
    from memn2n_cli.checkpoint import write_json
    from memn2n_cli.lm.sweep import LMSweepSpec, run_lm_sweep
    from memn2n_cli.sweeps import trial_file

    spec = LMSweepSpec("ptb", restarts=1, seed=0, grid={"dim": [16], "memory_size": [8]}, data_dir=str(small_ptb))
    [trial] = spec.trials()
    result = {**trial, "seed": 0, "epochs": 2, "valid_perplexity": 300.0, "test_perplexity": 310.0,
              "train_seconds": 5.0, "tokens_per_second": 1000.0, "run": str(tmp_path / "run")}
    out, path = tmp_path / "sweep", trial_file(tmp_path / "sweep", trial)
    write_json(path, result)
    assert run_lm_sweep(spec, out)["rows"][0]["valid_perplexity"] == 300.0  # as written, it is read
    for change, fragment in [({"epochs": 2.5}, "'epochs' must be a whole number, not 2.5"),
                             ({"valid_perplexity": [300]}, "'valid_perplexity' must be a number, not [300]"),
                             ({"run": None}, "'run' must be a string, not None"),
                             ({"restart": "0"}, "is not the result of trial defaults restart0")]:
        write_json(path, {**result, **change})
        with pytest.raises(UserError, match=re.escape(f"{path}: {fragment}")):
            run_lm_sweep(spec, out)
    write_json(path, {k: v for k, v in result.items() if k != "test_perplexity"})
    with pytest.raises(UserError, match="'test_perplexity' is missing"):
        run_lm_sweep(spec, out)


@pytest.mark.parametrize("damage, where", [
    (put(TRIAL, lambda p: p.write_text("[" * 100_000 + "]" * 100_000)), TRIAL),
    (edit_trial(lambda r: r.update(selected=json.loads("[" * 40 + "]" * 40))), TRIAL),
    (put("sweep.json", lambda p: p.write_text("[" * 100_000 + "]" * 100_000)), "sweep.json"),
])
def test_sweep_files_nested_deep_are_one_line(cli, small_sweep, tmp_path, damage, where):
    result = run_again(cli, small_sweep, tmp_path, damage)
    assert_one_line_error(result, f"{tmp_path / 'sweep' / where}: ", "nested more than 32 deep")


@pytest.mark.parametrize("damage, where", [
    (cut(TRIAL, 0.5), TRIAL), (cut(TRIAL, 0), TRIAL), (cut("sweep.json", 0.5), "sweep.json"),
])
def test_truncated_sweep_files_are_one_line(cli, small_sweep, tmp_path, damage, where):
    result = run_again(cli, small_sweep, tmp_path, damage)
    assert_one_line_error(result, f"{tmp_path / 'sweep' / where}: corrupt JSON")


@pytest.mark.parametrize("damage, where, fragment", [
    (put(TRIAL, os.mkfifo), TRIAL, "a FIFO, not a regular file"),
    (put("sweep.json", os.mkfifo), "sweep.json", "a FIFO, not a regular file"),
    (put(TRIAL, Path.mkdir), TRIAL, "a folder, not a regular file"),
    (put(TRIAL, lambda p: p.symlink_to("/dev/zero")), TRIAL, "a link to a file outside its folder"),
])
def test_sweep_files_that_are_not_regular_files_are_one_line_not_a_hang(cli, small_sweep, tmp_path, damage, where,
                                                                          fragment):
    with deadline():  # reading a FIFO waits for a writer for ever
        result = run_again(cli, small_sweep, tmp_path, damage)
    assert_one_line_error(result, f"{tmp_path / 'sweep' / where}: ", fragment)
