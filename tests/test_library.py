"""The library a notebook uses (`import memn2n`): the README's example, run as written."""

from __future__ import annotations

import ast
import re

import pytest

from tests.conftest import ROOT


def readme_example() -> str:
    section = (ROOT / "README.md").read_text().split("## As a library\n", 1)[1]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


@pytest.mark.slow
def test_the_readme_example_runs_as_written(en_dir, tmp_path, monkeypatch, capsys):
    """In a fresh folder, with the data where `memn2n` looks for it: it trains task 1, answers a
    story of its own (Mary is in the kitchen), and evaluates."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MEMN2N_DATA_DIR", str(en_dir))
    exec(compile(readme_example(), "README.md", "exec"), {})
    lines = capsys.readouterr().out.splitlines()
    assert float(lines[0]) < 30  # task 1's test error after 30 epochs (+ 20 of linear start)
    assert lines[1].startswith("Where is Mary? kitchen ") and 0.5 < float(lines[1].rsplit(" ", 1)[1]) <= 1
    hops = ast.literal_eval(lines[2])
    assert len(hops) == 3 and all(len(hop) == 2 and 0.9 < sum(hop) <= 1 + 1e-6 for hop in hops)  # empty slots: the rest
    assert hops[-1][0] > 0.9  # the last hop on "Mary went to the kitchen."
    assert "'task': 1" in lines[3]


def test_load_gives_the_handle_of_the_runs_kind(trained_run):
    import memn2n
    from memn2n_cli.qa.inference import QARun

    run = memn2n.load(trained_run[0])
    assert isinstance(run, QARun) and run.config["tasks"] == [1]
    stories = "1 Mary went to the hallway.\n2 Where is Mary?\thallway\t1\n"
    assert [p.correct for p in run.answer(stories)] == [True]
    assert run.evaluate("test")["tasks"][0]["test_error"] == trained_run[1]["tasks"][0]["test_error"]
    answered = memn2n.answer(trained_run[0], stories)  # a list, as predict prints them all, not a one-pass stream
    assert isinstance(answered, list) and [p.answer for p in answered] == [p.answer for p in run.answer(stories)]
    for call, name in ((lambda: memn2n.answer(run, stories), "run"), (lambda: memn2n.evaluate(run), "run"),
                       (lambda: memn2n.load(run), "path"), (lambda: memn2n.train("babi", 7), "out")):
        with pytest.raises(memn2n.ArgumentError, match=f"^{name}= must be a folder's path .* not a (QARun|int)$"):
            call()  # the loaded run, not its folder (run.path): one clear line, not a TypeError


def test_library_errors_name_the_field(tmp_path, en_dir):
    import memn2n

    with pytest.raises(memn2n.ConfigError, match="dim must be at least 1, not 0"):
        memn2n.train("babi", tmp_path / "run", data_dir=en_dir, dim=0)
    with pytest.raises(memn2n.ConfigError, match="colour is not an option of a question-answering model"):
        memn2n.train("babi", tmp_path / "run", data_dir=en_dir, colour="red")
    with pytest.raises(memn2n.UserError, match="unknown task 'nope'"):
        memn2n.train("nope", tmp_path / "run")
    # An option of the other kind of task, by its keyword here (the command line says --next, --task).
    with pytest.raises(memn2n.ArgumentError, match="^next_words= is an option of a language model$"):
        memn2n.answer("bundled", "Mary went home.\nWhere is Mary?\n", next_words=3)
    with pytest.raises(memn2n.ArgumentError, match="^task= is an option of question answering$"):
        memn2n.answer(ROOT / "tests" / "data" / "runs-before-24" / "ptb-small", "the cat", task=1)
    with pytest.raises(memn2n.ArgumentError, match="^top_k= is an option of question answering$"):  # it was ignored
        memn2n.answer(ROOT / "tests" / "data" / "runs-before-24" / "ptb-small", "the cat", top_k=5)
    assert [len(p.top) for p in memn2n.answer("bundled", "Mary went home.\nWhere is Mary?\n")] == [3]  # TOP_K, not given
    with pytest.raises(memn2n.ArgumentError, match="^linear_dim= is an option of a language model$"):
        memn2n.train("babi", tmp_path / "run", data_dir=en_dir, linear_dim=5)


def test_missing_data_from_python_names_data_dir_as_python_writes_it(tmp_path, monkeypatch):
    """Offline with no data, the README's example stops at its first line with memn2n.UserError, one
    line that names the argument as Python writes it (data_dir=), not the command line's --data-dir."""
    import memn2n

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("MEMN2N_BABI_URL", (tmp_path / "absent.tar.gz").as_uri())
    monkeypatch.delenv("MEMN2N_DATA_DIR", raising=False)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(memn2n.UserError) as raised:
        exec(compile(readme_example(), "README.md", "exec"), {})
    message = str(raised.value)
    assert "download failed" in message and "pass data_dir= with" in message and "--data-dir" not in message
    assert "\n" not in message and not (tmp_path / "runs").exists()
    with pytest.raises(memn2n.ArgumentError, match="jsonl trains on your own data: pass data_dir=, a folder"):
        memn2n.train("jsonl", tmp_path / "run")
    # A sweep's bad folder is named before any data is looked for (here it would be a failed download).
    with pytest.raises(memn2n.ArgumentError, match="^out= must be a folder's path"):
        memn2n.sweep("babi", 7)



@pytest.mark.parametrize("task", ["babi", "ptb"])
def test_a_sweep_refuses_an_option_given_both_fixed_and_in_the_grid(task, tmp_path):
    """hops=3 beside grid={"hops": [1, 2]} once swept hops 3 alone, the grid dropped; the command
    line refuses --hops with --grid hops=..., and so does the library, naming its keyword."""
    import memn2n

    with pytest.raises(memn2n.ArgumentError, match="^hops= is given both as an option and in the grid$"):
        memn2n.sweep(task, tmp_path / "sweep", grid={"hops": [1, 2]}, hops=3)
    assert not (tmp_path / "sweep").exists()


def test_the_library_loads_no_command_line_and_checks_its_arguments(en_dir, tmp_path):
    """A script that trains, loads, answers and evaluates through `memn2n` never imports Typer or
    Rich (a fresh process: this one has the CLI loaded), and a bad split is a UserError naming
    the argument as Python writes it."""
    import subprocess
    import sys

    script = f"""
import sys, memn2n
memn2n.train("babi", {str(tmp_path / 'run')!r}, data_dir={str(en_dir)!r}, tasks=[1], epochs=2, ls_epochs=1)
run = memn2n.load({str(tmp_path / 'run')!r})
assert run.answer("Mary went to the kitchen.\\nWhere is Mary?")[0].answer
assert memn2n.evaluate({str(tmp_path / 'run')!r})["split"] == "test" and run.evaluate("valid")["tasks"]
try:
    run.evaluate("dev")
except memn2n.UserError as e:
    print(e)
print(sorted(m for m in sys.modules if m.split(".")[0] in ("typer", "rich", "click")))
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["split= is one of train, valid, test, not 'dev'", "[]"]


def test_only_the_command_line_imports_typer_or_rich_and_no_command_imports_the_app_module():
    """Statically, every import (lazy ones too): Typer and Rich only under memn2n_cli/commands/ and
    in memn2n_cli/cli.py; the commands import the app from commands/app.py, never cli.py, which
    imports them (no circle)."""
    for path in sorted((ROOT / "memn2n_cli").rglob("*.py")) + sorted((ROOT / "memn2n").rglob("*.py")):
        relative = path.relative_to(ROOT).as_posix()
        command_line = relative.startswith("memn2n_cli/commands/") or relative == "memn2n_cli/cli.py"
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                names = [node.module or ""] if isinstance(node, ast.ImportFrom) else [a.name for a in node.names]
                for name in names:
                    if not command_line:
                        assert name.split(".")[0] not in ("typer", "rich", "click"), f"{relative} imports {name}"
                    if relative.startswith("memn2n_cli/commands/"):
                        assert name != "memn2n_cli.cli", f"{relative} imports memn2n_cli.cli"


def test_library_calls_with_bad_values_raise_its_own_errors(trained_run, tmp_path, en_dir):
    """Not an IndexError, RuntimeError or TypeError from deep inside, nor a string read as a list:
    each a UserError or ConfigError that names the argument."""
    import memn2n

    run = memn2n.load(trained_run[0])
    story = "Mary went to the hallway.\nWhere is Mary?\n"
    for top_k in (0, -1, 101, 2.0, True):
        with pytest.raises(memn2n.ArgumentError, match=rf"top_k= must be a whole number from 1 to 100, not {top_k!r}"):
            run.answer(story, top_k=top_k)
    for story in ([], None, 7, b"Where is Mary?"):  # None and 7 were a TypeError
        with pytest.raises(memn2n.ArgumentError, match="^story= must be a story's text or a list of one or more Questions$"):
            run.answer(story)
    with pytest.raises(memn2n.ArgumentError, match="^story= must be a string, not None$"):  # an AttributeError
        memn2n.answer(trained_run[0], None)
    assert memn2n.load(trained_run[0], task="1").config["tasks"] == [1]  # "1" is task 1, not "not of task 1"
    with pytest.raises(memn2n.ArgumentError, match="task= must be a task number, not 1.5"):
        memn2n.load(trained_run[0], task=1.5)
    lm = ROOT / "tests" / "data" / "runs-before-24" / "ptb-small"
    for prompt in ("", " \n "):
        with pytest.raises(memn2n.UserError, match="the prompt has no words to continue"):
            memn2n.load(lm).continue_text(prompt)
    # No words to add is an error, as `predict --next 0` is (0 and -1 gave [], next_words=0 ten words).
    for count in (0, -1, 2.0, True):
        with pytest.raises(memn2n.ArgumentError, match=rf"^count= must be a whole number of at least 1, not {count!r}$"):
            memn2n.load(lm).continue_text("the company said", count)
        with pytest.raises(memn2n.ArgumentError, match=rf"^next_words= must be a whole number of at least 1, not {count!r}$"):
            memn2n.answer(lm, "the company said", next_words=count)
    assert len(memn2n.load(lm).continue_text("the company said", 1)) == 1
    for prompt, shown in ((None, "None"), (b"the company", "b'the company'")):  # an AttributeError
        with pytest.raises(memn2n.ArgumentError, match=f"^prompt= must be a string, not {re.escape(shown)}$"):
            memn2n.load(lm).continue_text(prompt)
    out = tmp_path / "run"
    # "12" is task 12 (it was tasks 1 and 2, trained jointly), "21" task 21 (it was tasks 2 and 1).
    with pytest.raises(memn2n.UserError, match="--joint needs at least two tasks"):
        memn2n.train("babi", out, data_dir=en_dir, tasks="12", joint=True)
    with pytest.raises(memn2n.UserError, match="unknown bAbI task '21'"):
        memn2n.train("babi", out, data_dir=en_dir, tasks="21")
    with pytest.raises(memn2n.ArgumentError, match="tasks= must be a task number"):
        memn2n.train("babi", out, data_dir=en_dir, tasks=True)
    for options, message in [({"memory_size": True}, "memory_size must be a whole number, not True"),
                             ({"dim": 20.0}, "dim must be a whole number, not 20.0"),
                             ({"seed": 2**70}, "seed must be at most 18,446,744,073,709,551,615")]:
        with pytest.raises(memn2n.ConfigError, match=message):
            memn2n.train("babi", out, data_dir=en_dir, **options)
    assert not out.exists()


def test_a_diverged_model_raises_diverged_naming_the_run(tmp_path, en_dir):
    """A question-answering model whose training loss stops being finite raises memn2n.Diverged
    (the command line's exit 1) after that epoch, not a summary of NaN weights."""
    import memn2n

    out = tmp_path / "diverged"
    with pytest.raises(memn2n.Diverged, match=f"{out}: diverged in epoch 1"):
        memn2n.train("babi", out, data_dir=en_dir, tasks=1, linear_start=False, lr=1e30, epochs=3)
