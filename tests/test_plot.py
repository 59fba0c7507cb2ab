"""`memn2n plot`: a run's learning curves, a bAbI sweep's heatmap and a language-model sweep's
trends, each read back from the picture written (its size; the heatmap's colours), in the
terminal, and the one-line errors."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ElementTree
from collections import Counter
from pathlib import Path

import pytest

from memn2n_cli import plots
from memn2n_cli.history import HISTORY_FILE, read_history
from tests.conftest import ROOT, assert_one_line_error, published

OLD = ROOT / "tests" / "data" / "runs-before-24"
needs_matplotlib = pytest.mark.skipif(__import__("importlib").util.find_spec("matplotlib") is None,
                                      reason="pictures need the optional extra memn2n[plot]")


def png(path: Path):
    import matplotlib.image

    return matplotlib.image.imread(path)


def svg_size(path: Path) -> tuple[str, str]:
    root = ElementTree.parse(path).getroot()
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    return root.get("width"), root.get("height")


@pytest.fixture(scope="module")
def two_task_run(tmp_path_factory, en_dir):
    """`memn2n train babi --task 1 --task 4`: one model per task, 1 epoch of linear start and 3 after."""
    from typer.testing import CliRunner

    from memn2n_cli.cli import app

    out = tmp_path_factory.mktemp("plot-runs") / "two"
    result = CliRunner().invoke(app, ["train", "babi", "--task", "1", "--task", "4", "--data-dir", str(en_dir),
                                      "--out", str(out), "--epochs", "3", "--ls-epochs", "1"])
    assert result.exit_code == 0, (result.stderr, result.exception)
    return out


@needs_matplotlib
def test_a_run_of_two_models_as_png_and_svg(cli, two_task_run, tmp_path):
    """A model per task in a grid of two (4.5 x 3.5 inches each, 150 dpi; an SVG in points), each
    model's drawn curves its history's figures, linear start's end after epoch 1."""
    result = cli("plot", two_task_run, "--out", tmp_path / "run.png")
    assert result.exit_code == 0, result.stderr
    assert result.stderr == f"saved {tmp_path / 'run.png'}\n" and result.stdout == ""
    picture = png(tmp_path / "run.png")
    assert picture.shape == (525, 1350, 4) and picture[..., :3].std() > 0.1  # drawn, not blank
    assert cli("plot", two_task_run, "--out", tmp_path / "run.svg").exit_code == 0
    assert svg_size(tmp_path / "run.svg") == ("648pt", "252pt")

    data = plots.read_plot(two_task_run)
    assert [(m.name, m.title, m.metric) for m in data.models] == [("qa1", "babi task 1", "error"),
                                                                  ("qa4", "babi task 4", "error")]
    for model in data.models:
        history = read_history(two_task_run / model.name)
        assert len(history) == 4 and [line["phase"] for line in history] == ["linear"] + ["softmax"] * 3
        train, valid = model.curves
        assert (train.name, train.epochs, train.values) == ("train", [1, 2, 3, 4], [h["train_error"] for h in history])
        assert valid.values == [h["valid_error"] for h in history]
        assert model.lr[0].values == pytest.approx([h["lr"] for h in history]) and model.linear_start_ends == [1]
    figure = plots.draw(data)
    drawn = [list(line.get_ydata()) for line in figure.subfigs[1].axes[0].get_lines() if line.get_label() == "train"]
    assert drawn == [data.models[1].curves[0].values]


@needs_matplotlib
def test_old_runs_plot_from_the_history_they_hold(cli, tmp_path):
    """Runs written before history.jsonl: the history in metrics.json (question answering; 5
    epochs of linear start, 10 after) and state.json (a language model, 2 epochs)."""
    babi = json.loads((OLD / "babi-task1" / "metrics.json").read_text())["history"]
    data = plots.read_plot(OLD / "babi-task1")
    (model,) = data.models
    assert model.curves[0].values == [h["train_error"] for h in babi] and model.linear_start_ends == [5]
    ptb = json.loads((OLD / "ptb-small" / "state.json").read_text())["history"]
    (lm,) = plots.read_plot(OLD / "ptb-small").models
    assert lm.metric == "perplexity" and lm.curves[1].values == [h["valid_perplexity"] for h in ptb]
    for run in ("babi-task1", "ptb-small"):
        result = cli("plot", OLD / run, "--out", tmp_path / f"{run}.png")
        assert result.exit_code == 0, result.stderr
        assert png(tmp_path / f"{run}.png").shape == (825, 1200, 4)  # 8 x 5.5 inches at 150 dpi
    text = cli("plot", OLD / "babi-task1")
    assert text.exit_code == 0, text.stderr
    train = next(line for line in text.stdout.splitlines() if "train error" in line)
    assert "59.4%" in train and "0.0% (epoch 11)" in train  # first, best
    assert "linear start ended after epoch 5" in text.stdout
    lm_text = cli("plot", OLD / "ptb-small").stdout
    assert "1242.2" in lm_text and "113.6 (epoch 1)" in lm_text and "143.5" in lm_text


def test_restarts_draw_a_curve_each_and_progress_lines_are_not_epochs(cli, tmp_path):
    """A history whose lines carry a restart each (and a figure a plugin task adds); a language
    model's progress lines as points within their epoch, not as epochs."""
    qa = tmp_path / "qa"
    shutil.copytree(OLD / "babi-task1", qa)
    epochs = json.loads((qa / "metrics.json").read_text())["history"][:6]
    lines = [{**h, "restart": r, "train_error": h["train_error"] + 10 * r, "own_figure": 1.5} for r in (0, 1) for h in epochs]
    (qa / HISTORY_FILE).write_text("".join(json.dumps(line) + "\n" for line in lines))
    (model,) = plots.read_plot(qa).models
    assert [(c.name, c.restart) for c in model.curves] == [("train", 0), ("valid", 0), ("train", 1), ("valid", 1)]
    assert model.curves[2].values == [h["train_error"] + 10 for h in epochs] and len(model.lr) == 2
    assert model.linear_start_ends == [5, 5]
    text = cli("plot", qa).stdout
    assert "train error, restart 1" in text and "valid error, restart 0" in text
    (qa / HISTORY_FILE).write_text("".join(json.dumps(line) + "\n" for line in epochs[:5]))  # still in linear start
    assert plots.read_plot(qa).models[0].linear_start_ends == []

    lm = tmp_path / "lm"
    shutil.copytree(OLD / "ptb-small", lm)
    history = json.loads((lm / "state.json").read_text())["history"]
    progress = [{"epoch": 2, "step": 300 + k, "step_in_epoch": k, "steps_in_epoch": 400, "lr": 0.01,
                 "train_perplexity": 600.0 - k} for k in (100, 200)]
    (lm / HISTORY_FILE).write_text("".join(json.dumps(line) + "\n" for line in [history[0], *progress, history[1]]))
    (model,) = plots.read_plot(lm).models
    assert model.curves[0].epochs == [1, 2] and model.curves[0].values == [h["train_perplexity"] for h in history]
    assert model.within_epochs.epochs == [1.25, 1.5] and model.within_epochs.values == [500.0, 400.0]


@pytest.fixture(scope="module")
def babi_sweep(tmp_path_factory, en_dir):
    """A real `--preset table1` sweep of two columns on tasks 1 and 4, then its test errors set to
    known, different values (the paper's: BoW 0.6 and 32.0, PE 0.1 and 3.8) and its data files to
    upstream's English ones."""
    from typer.testing import CliRunner

    from memn2n_cli.cli import app

    out = tmp_path_factory.mktemp("plot-sweeps") / "table1"
    result = CliRunner().invoke(app, ["sweep", "babi", "--preset", "table1", "--column", "BoW", "--column", "PE",
                                      "--task", "1", "--task", "4", "--restarts", "1", "--epochs", "1", "--ls-epochs", "1",
                                      "--workers", "1", "--out", str(out), "--data-dir", str(en_dir), "--json"])
    assert result.exit_code == 0, (result.stderr, result.exception)
    summary = json.loads((out / "results.json").read_text())
    known = {"BoW": {"1": 10.0, "4": 70.0}, "PE": {"1": 40.0, "4": 0.0}}
    summary["data_files"] = published("babi_v1.2.sha256", "en/")  # upstream's English tasks, wherever en_dir is from
    for label, errors in known.items():
        for task, error in errors.items():
            summary["cells"][label][task]["test_error"] = error
        summary["columns"][label] = {"mean_test_error": sum(errors.values()) / 2,
                                     "failed_tasks": sum(e > 5 for e in errors.values())}
    (out / "results.json").write_text(json.dumps(summary))
    return out


def cell_colours(figure, picture, rows: int, columns: int) -> dict[tuple[int, int], tuple]:
    """The most common colour of the inner half of each heatmap cell (the fill, not its text), by
    (row, column), read from ``picture`` at the cell's place in ``figure``."""
    (axes,) = [a for a in figure.axes if a.images]
    height = picture.shape[0]
    colours = {}
    for r in range(rows):
        for c in range(columns):
            (x0, y0), (x1, y1) = axes.transData.transform([(c - 0.25, r - 0.25), (c + 0.25, r + 0.25)])
            block = picture[round(height - max(y0, y1)):round(height - min(y0, y1)), round(min(x0, x1)):round(max(x0, x1)), :3]
            pixels = Counter(tuple(round(float(v) * 255) for v in pixel) for pixel in block.reshape(-1, 3))
            colours[r, c] = pixels.most_common(1)[0][0]
    return colours


def test_bundled_names_the_model_that_comes_with_memn2n_as_everywhere(cli, tmp_path, monkeypatch):
    from memn2n_cli.checkpoint import BUNDLED_RUN

    monkeypatch.chdir(tmp_path)  # no folder named bundled here
    result = cli("plot", "bundled")
    assert result.exit_code == 0, result.stderr
    assert "train error" in result.stdout
    named, bundled = plots.read_plot(Path("bundled")), plots.read_plot(BUNDLED_RUN)
    assert [c.values for m in named.models for c in m.curves] == [c.values for m in bundled.models for c in m.curves]


@needs_matplotlib
def test_a_babi_sweep_as_a_heatmap_whose_colours_follow_the_errors(cli, babi_sweep, tmp_path):
    data = plots.read_plot(babi_sweep)
    assert data.columns == ["BoW", "PE"] and data.rows == ["task 1", "task 4", "mean"]
    assert data.ours == [[10.0, 40.0], [70.0, 0.0], [40.0, 20.0]]
    assert data.paper == [[0.6, 0.1], [32.0, 3.8], [16.3, pytest.approx(1.95)]]  # means over the two tasks
    assert data.failed == [(2, 1), (1, 0)]
    out = tmp_path / "table1.png"
    figure = plots.draw(plots.read_plot(babi_sweep))
    plots.save_figure(figure, out)
    picture = png(out)
    assert picture.shape == (round(150 * (1.9 + 0.42 * 3)), round(150 * (2.4 + 1.25 * 2)), 4)
    colours = cell_colours(figure, picture, 3, 2)
    by_error = sorted(colours, key=lambda cell: data.ours[cell[0]][cell[1]])
    shades = [plots.luminance(colours[cell]) for cell in by_error]
    errors = [data.ours[r][c] for r, c in by_error]
    assert all(a > b for a, b, e, f in zip(shades, shades[1:], errors, errors[1:]) if e < f)  # darker as the error grows
    for (r, c), colour in colours.items():  # each the colour of its error along the scale
        assert colour == pytest.approx(plots.heat_colour(data.ours[r][c]), abs=3)
    assert cli("plot", babi_sweep, "--out", tmp_path / "table1.svg").exit_code == 0
    assert svg_size(tmp_path / "table1.svg") == (f"{72 * 4.9:g}pt", f"{72 * (1.9 + 0.42 * 3):g}pt")


def test_a_babi_sweep_in_the_terminal(cli, babi_sweep):
    result = cli("plot", babi_sweep)
    assert result.exit_code == 0, result.stderr
    rows = {line.split("│")[1].strip(): line for line in result.stdout.splitlines() if line.count("│") >= 3}
    assert "10.0 (0.6, +9.4)" in rows["task 1"] and "40.0 (0.1, +39.9)" in rows["task 1"]
    assert "70.0 (32.0, +38.0)" in rows["task 4"] and "0.0 (3.8, -3.8)" in rows["task 4"]
    assert "40.0 (16.3, +23.7)" in rows["mean"] and "2 (1)" in rows["failed"]


def test_heat_colours_darken_as_the_error_grows():
    assert plots.heat_colour(0) == plots.HEAT[0] and plots.heat_colour(100) == plots.HEAT[-1]
    assert plots.heat_colour(50) == plots.HEAT[1] and plots.heat_colour(150) == plots.HEAT[-1]
    shades = [plots.luminance(plots.heat_colour(e)) for e in range(0, 101, 5)]
    assert all(a > b for a, b in zip(shades, shades[1:]))


def test_sparkline():
    assert plots.sparkline([3, 2, 1]) == "█▅▁" and plots.sparkline([5, 5]) == "▁▁" and plots.sparkline([]) == ""
    assert plots.sparkline(list(range(100)), width=10) == "▁▂▃▃▄▅▆▆▇█"  # group means 4.5, 14.5, ..., 94.5
    assert plots.sparkline([1, 10, 100], log=True) == "▁▅█"


@pytest.fixture(scope="module")
def lm_sweep(tmp_path_factory, small_ptb):
    """A real sweep over hops 1, 2 x memory 4, 8 (16 units, 1 epoch, 1 restart)."""
    from typer.testing import CliRunner

    from memn2n_cli.cli import app

    out = tmp_path_factory.mktemp("plot-sweeps") / "lm"
    result = CliRunner().invoke(app, ["sweep", "ptb", "--data-dir", str(small_ptb), "--grid", "hops=1,2",
                                      "--grid", "memory_size=4,8", "--dim", "16", "--batch-size", "32",
                                      "--max-epochs", "1", "--restarts", "1", "--workers", "1", "--out", str(out), "--json"])
    assert result.exit_code == 0, (result.stderr, result.exception)
    return out, {row["configuration"]: row for row in json.loads(result.stdout)["rows"]}


@pytest.mark.slow  # four language models trained, ~30 s on 2 busy cores; Table 2's test below is the quick one
@needs_matplotlib
def test_a_language_model_sweep_as_a_panel_per_option_it_varies(cli, lm_sweep, tmp_path):
    """Hops at memory 4 (the first of two as common) and memory at 1 hop, our test perplexities."""
    out, rows = lm_sweep
    data = plots.read_plot(out)
    assert [(p.option, p.fixed, [q.value for q in p.points]) for p in data.panels] == [
        ("hops", {"memory_size": 4}, [1, 2]), ("memory_size", {"hops": 1}, [4, 8])]
    assert [q.test for q in data.panels[0].points] == [rows["hops=1,memory_size=4"]["test_perplexity"],
                                                       rows["hops=2,memory_size=4"]["test_perplexity"]]
    assert data.left_out == ["hops=2,memory_size=8"]
    result = cli("plot", out, "--out", tmp_path / "lm.png")
    assert result.exit_code == 0, result.stderr
    assert png(tmp_path / "lm.png").shape == (600, 1500, 4)  # two panels of 5 x 4 inches
    text = cli("plot", out).stdout
    assert f"{rows['hops=2,memory_size=4']['test_perplexity']:.1f}" in text and "in no panel: hops=2,memory_size=8" in text


@needs_matplotlib
def test_table_2_trends_hops_at_memory_100_and_memory_at_6_hops(cli, tmp_path):
    """Table 2's preset with three configurations trained (its figures written by the sweep's own
    summary): the paper's figures for all, ours where trained; 7 hops at memory 200 in no panel."""
    from memn2n_cli.lm.sweep import LMSweepSpec, summarize, write_results
    from memn2n_cli.sweeps import open_sweep_dir

    out = tmp_path / "table2"
    spec = LMSweepSpec(task="ptb", restarts=1, seed=0, grid={}, data_dir=".", preset="table2")
    trained = {"3 hops": 140.0, "6 hops": 130.0, "memory 50": 135.0}
    trials = [{"label": label, "restart": 0, "seed": 0, "epochs": 1, "run": str(out / label),
               "valid_perplexity": test + 5, "test_perplexity": test} for label, test in trained.items()]
    from dataclasses import asdict

    open_sweep_dir(out, asdict(spec))
    write_results(out, summarize(spec, trials, out, published("ptb.sha256")))
    data = plots.read_plot(out)
    hops, memory = data.panels
    assert (hops.option, hops.fixed, [p.value for p in hops.points]) == ("hops", {"memory_size": 100}, [2, 3, 4, 5, 6, 7])
    assert (memory.option, memory.fixed, [p.value for p in memory.points]) == (
        "memory_size", {"hops": 6}, [25, 50, 75, 100, 125, 150])
    assert data.left_out == ["7 hops, memory 200"]
    assert [(p.test, p.paper_test) for p in hops.points[:2]] == [(None, 121), (140.0, 122)]
    figure = plots.draw(plots.read_plot(out))
    plots.save_figure(figure, tmp_path / "table2.svg")
    assert svg_size(tmp_path / "table2.svg") == ("720pt", "288pt")
    ours = next(line for line in figure.axes[1].get_lines() if line.get_label() == "ours, test")
    paper = next(line for line in figure.axes[1].get_lines() if line.get_label() == "paper, test")
    assert list(ours.get_xdata()) == [50, 100] and list(ours.get_ydata()) == [135.0, 130.0]  # trained only
    assert list(paper.get_ydata()) == [118, 114, 114, 115, 112, 114]
    text = cli("plot", out).stdout
    assert text.count("not trained yet") == 4 + 4 and "7 hops, memory 200" in text


def test_bad_input_is_one_line_and_exit_2(cli, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    assert_one_line_error(cli("plot", tmp_path / "nowhere"), "no such run or sweep directory")
    assert_one_line_error(cli("plot", empty), "not a memn2n run or sweep")
    assert_one_line_error(cli("plot", OLD / "babi-task1", "--out", tmp_path / "curves.jpg"), "curves.jpg",
                          "--out must name a .png or .svg file")
    assert_one_line_error(cli("plot", tmp_path / "nowhere", "--out", tmp_path / "curves.pdf"), "--out")  # checked first
    no_history = tmp_path / "no-history"
    shutil.copytree(OLD / "babi-task1", no_history)
    (no_history / HISTORY_FILE).write_text("")
    assert_one_line_error(cli("plot", no_history), "no history to draw: no epoch of training is recorded yet")
    (no_history / HISTORY_FILE).write_text('{"epoch": 1, "lr": 0.01, "train_loss": NaN, "train_error": NaN, '
                                           '"valid_error": NaN}\n')  # diverged in its first epoch
    assert_one_line_error(cli("plot", no_history), "no history to draw: no figure recorded is finite (the run diverged)")
    unfinished = tmp_path / "unfinished"
    unfinished.mkdir()
    (unfinished / "sweep.json").write_text(json.dumps({"task": "babi"}))
    assert_one_line_error(cli("plot", unfinished), "no results.json yet: a language-model sweep writes it as each trial finishes")
    (unfinished / "results.json").write_text(json.dumps({"spec": {"task": "babi"}}))
    assert_one_line_error(cli("plot", unfinished), "results.json", "not the results of a memn2n sweep")
    preset = {"task": "babi", "preset": "table1", "select": "train", "restarts": 1}
    (unfinished / "results.json").write_text(json.dumps({  # a task bAbI does not have, on the paper's data
        "spec": preset, "configurations": ["BoW"], "cells": {"BoW": {"25": {"test_error": 1.0}}},
        "columns": {"BoW": {"mean_test_error": 1.0, "failed_tasks": 0}}, "data_files": published("babi_v1.2.sha256", "en/")}))
    assert_one_line_error(cli("plot", unfinished), "results.json", "not the results of a memn2n sweep", "no bAbI task 25")
    assert not (tmp_path / "curves.jpg").exists()


def test_without_matplotlib_the_picture_names_the_extra_and_the_terminal_view_still_works(tmp_path):
    """In a fresh process where `import matplotlib` fails: the terminal view, then --out's one line."""
    code = ("import sys; sys.modules['matplotlib'] = None; from memn2n_cli.cli import app\n"
            "for args in (sys.argv[1:2], sys.argv[1:]):\n"
            "    try:\n"
            "        app(['plot', *args], prog_name='memn2n')\n"
            "    except SystemExit as e:\n"
            "        print('exit', e.code, file=sys.stderr)\n")
    done = subprocess.run([sys.executable, "-c", code, str(OLD / "babi-task1"), "--out", str(tmp_path / "curves.png")],
                          capture_output=True, text=True, cwd=ROOT, env={**os.environ, "COLUMNS": "120"}, timeout=300)
    assert done.stderr.splitlines() == ["exit 0", "error: drawing a picture needs matplotlib: pip install 'memn2n[plot]'",
                                        "exit 2"], done.stderr
    assert "59.4%" in done.stdout and not (tmp_path / "curves.png").exists()


def test_a_run_in_training_draws_its_models_so_far_those_still_training_included(cli, en_dir, tmp_path, monkeypatch):
    """Killed in task 4's second epoch, one model per task: `plot` draws task 1's complete model
    and task 4's in training (its progress file and history.jsonl, no config.json yet), whose
    history grows epoch by epoch; a damaged progress file is one line."""
    import memn2n_cli.qa.runs as runs
    from tests.conftest import die_after_saves

    run = tmp_path / "run"
    die_after_saves(monkeypatch, runs, "write_progress", 4 + 2)  # task 1's four epochs, task 4's first two
    killed = cli("train", "babi", "--task", "1", "--task", "4", "--data-dir", en_dir, "--out", run, "--epochs", "3",
                 "--ls-epochs", "1")
    assert isinstance(killed.exception, SystemError)
    monkeypatch.undo()
    assert (run / "qa1" / "config.json").is_file() and not (run / "qa4" / "config.json").exists()
    data = plots.read_plot(run)
    assert [(m.name, m.title) for m in data.models] == [("qa1", "babi task 1"), ("qa4", "babi task 4")]
    train, valid = data.models[1].curves
    assert valid.epochs == [1, 2] and valid.values == [line["valid_error"] for line in read_history(run / "qa4")]
    shown = cli("plot", run)
    assert shown.exit_code == 0 and "babi task 4" in shown.stdout, shown.stderr
    (run / "qa4" / "progress.safetensors").write_bytes((2).to_bytes(8, "little") + b"{}")
    assert_one_line_error(cli("plot", run), f"{run / 'qa4' / 'progress.safetensors'}: corrupt training progress")
    one = tmp_path / "one"  # one model, in the run's own folder
    die_after_saves(monkeypatch, runs, "write_progress", 2)
    assert isinstance(cli("train", "babi", "--task", "1", "--data-dir", en_dir, "--out", one).exception, SystemError)
    monkeypatch.undo()
    assert [(m.name, m.title, m.curves[1].epochs) for m in plots.read_plot(one).models] == [("one", "babi task 1", [1, 2])]
