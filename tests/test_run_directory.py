"""A run directory under abuse (issue 29, items 3 to 5): a damaged or hostile folder is a one-line
error before anything large is read or built, and `serve` leaves it out; a folder has one writer
at a time; a disk that fills is a failed run (exit 1) that resumes to the same model."""

from __future__ import annotations

import errno
import json
import os
import shutil
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path

import pytest

from memn2n_cli import checkpoint
from memn2n_cli.model import MemN2N
from tests.conftest import ROOT, assert_one_line_error
from tests.test_fuzz import deadline


class NotBuilt(MemN2N):
    """MemN2N, counted but never built: a hostile run must be refused before its model is allocated."""

    def __init__(self, config):
        raise AssertionError(f"the model of a hostile run was built: {config}")


def copy_run(source: Path, run: Path, manifest: bool = False) -> Path:
    """A copy of a trained run; without its manifest unless ``manifest``, as a folder edited by hand."""
    shutil.copytree(source, run)
    if not manifest:
        (run / "manifest.json").unlink()
    return run


def edit(name: str, change):
    """Damage: ``change`` applied to the JSON of file ``name``."""
    def damage(run: Path) -> None:
        data = json.loads((run / name).read_text())
        change(data)
        (run / name).write_text(json.dumps(data))
    return damage


def replace(name: str, make):
    """Damage: file ``name`` removed, and ``make(path)`` puts something else there."""
    def damage(run: Path) -> None:
        (run / name).unlink()
        make(run / name)
    return damage


def nested(path: Path) -> None:
    path.write_text("[" * 100_000 + "]" * 100_000)


def link_to(target: str):
    return lambda path: os.symlink(target, path)


def words(count: int):
    """vocab.json's words made ``count`` long: a vocabulary that matches a config asking for it."""
    return lambda vocab: vocab.update(words=vocab["words"] + [f"w{i}" for i in range(count - len(vocab["words"]))])


HOSTILE = {  # issue 29, item 3: each within its fields' own bounds, or not a file at all
    "vocab_size 10,000,000 with dim 10,000": (
        [edit("config.json", lambda c: c["model"].update(vocab_size=10_000_000, dim=10_000))],
        "config.json: model settings: vocab_size, dim, hops and memory_size make a model of 400,000,400,000 weights"),
    "memory_size 100,000 with hops 100": (
        [edit("config.json", lambda c: c["model"].update(memory_size=100_000, hops=100))],
        "model.safetensors: weights do not match config.json (a corrupt weights file, or another model's): 9,792 bytes, "
        "too few for the 202,040,400 weights"),
    "vocab_size 12,500 with dim 10,000 and a vocabulary to match": (
        [edit("config.json", lambda c: c["model"].update(vocab_size=12_500, dim=10_000)), edit("vocab.json", words(12_500))],
        "model.safetensors: weights do not match config.json"),
    "dim 20.0": ([edit("config.json", lambda c: c["model"].update(dim=20.0))], "dim must be a whole number, not 20.0"),
    "answer ids true": ([edit("config.json", lambda c: c["model"].update(answer_word_ids=[True]))],
                        "answer_word_ids must be word ids"),
    "data without its files' checksums": ([edit("config.json", lambda c: c["data"].pop("files"))],
                                         "config.json: 'tasks' must be task numbers, and 'data' name the data's folder and "
                                         "its files' checksums"),
    # J = 0 divided by zero in the position encoding: every answer NaN, exit 0.
    "sentence_size 0": ([edit("config.json", lambda c: c["model"].update(sentence_size=0))],
                        "config.json: model settings: sentence_size must be at least 1, not 0"),
    "deeply nested config.json": ([lambda run: nested(run / "config.json")],
                                  "config.json: corrupt JSON: nested more than 32 deep"),
    "deeply nested vocab.json": ([lambda run: nested(run / "vocab.json")], "vocab.json: corrupt JSON: nested more than 32 deep"),
    "words of numbers": ([edit("vocab.json", lambda v: v.update(words=list(range(len(v["words"])))))],
                         "vocab.json: corrupt vocabulary"),
    "config.json linked to /dev/zero": ([replace("config.json", link_to("/dev/zero"))],
                                        "config.json: is a link to a file outside its folder"),
    "model.safetensors linked to /dev/zero through a link in the folder": (
        [replace("model.safetensors", link_to("zero")), lambda run: os.symlink("/dev/zero", run / "zero")],
        "model.safetensors: is a link to a file outside its folder"),
    "vocab.json linked to /dev/urandom": ([replace("vocab.json", link_to("/dev/urandom"))], "vocab.json: is a link"),
    "model.safetensors a FIFO": ([replace("model.safetensors", os.mkfifo)], "model.safetensors: cannot read: a FIFO"),
    "vocab.json a FIFO": ([replace("vocab.json", os.mkfifo)], "vocab.json: cannot read: a FIFO"),
    "weights larger than the model they are said to hold": (
        [lambda run: (run / "model.safetensors").write_bytes((run / "model.safetensors").read_bytes() + bytes(2**21))],
        "model.safetensors: holds 2,"),
}


@pytest.mark.parametrize("case", list(HOSTILE))
def test_a_hostile_run_is_one_line_before_its_model_is_built(cli, trained_run, tmp_path, monkeypatch, case):
    """Issue 29, item 3: sizes that are too large together, a field of the wrong type, JSON nested
    past any run's, a FIFO, a device or a link out of the folder: `eval` says what is wrong in
    one line, without a hang, a traceback, or building the model (a MemN2N that fails if built)."""
    damages, fragment = HOSTILE[case]
    run = copy_run(trained_run[0], tmp_path / "run")
    for damage in damages:
        damage(run)
    monkeypatch.setattr(checkpoint, "MemN2N", NotBuilt)
    with deadline():
        assert_one_line_error(cli("eval", run), fragment)


def test_the_manifest_reads_no_fifo_and_a_link_in_the_folder_is_read(cli, trained_run, tmp_path):
    """check_manifest reads each file as the loader does (a FIFO refused, not waited on); a file
    that is a link to another in the same folder is read as that file."""
    run = copy_run(trained_run[0], tmp_path / "run", manifest=True)
    replace("history.jsonl", os.mkfifo)(run)
    with deadline():
        assert_one_line_error(cli("eval", run), "history.jsonl: cannot read: a FIFO")
    linked = copy_run(trained_run[0], tmp_path / "linked", manifest=True)
    (linked / "vocab.json").rename(linked / "words.json")
    os.symlink("words.json", linked / "vocab.json")
    checkpoint.load_model(linked)


def test_resume_keeps_a_finished_model_only_when_it_would_load(cli, trained_run, tmp_path, en_dir):
    """`train --resume` keeps a model already finished in the folder: one that is damaged (here
    its vocabulary a FIFO, its metrics without rows) is a one-line error, not kept as it is."""
    resume = ["train", "babi", "--task", "1", "--data-dir", en_dir, "--epochs", "15", "--ls-epochs", "5", "--resume"]
    run = copy_run(trained_run[0], tmp_path / "fifo", manifest=True)
    replace("vocab.json", os.mkfifo)(run)
    with deadline():
        assert_one_line_error(cli(*resume, run), "vocab.json: cannot read: a FIFO")
    run = copy_run(trained_run[0], tmp_path / "metrics")
    edit("metrics.json", lambda metrics: metrics.update(tasks=[{"task": 1}]))(run)
    assert_one_line_error(cli(*resume, run), "metrics.json: corrupt metrics")


def test_serve_leaves_hostile_runs_out_and_a_request_naming_one_is_4xx(trained_run, tmp_path, monkeypatch, caplog):
    """Under ./checkpoints, hostile runs are left out of `serve` with a warning when it starts
    (not listed, though newer runs load), and so is the newest, a run whose weights are NaN (only
    loading shows that), so the default is the next; a request that names one is a 4xx, never a
    500 or a hang."""
    from starlette.testclient import TestClient

    from memn2n_cli.qa.web import Runs, create_app
    from tests.test_cli import _nan_weights

    monkeypatch.chdir(tmp_path)
    hostile = ["vocab_size 10,000,000 with dim 10,000", "memory_size 100,000 with hops 100", "dim 20.0",
               "deeply nested vocab.json", "config.json linked to /dev/zero", "model.safetensors a FIFO"]
    copy_run(trained_run[0], Path("checkpoints/good"))
    for age, case in enumerate(hostile, 1):
        run = copy_run(trained_run[0], Path(f"checkpoints/hostile{age}"))
        for damage in HOSTILE[case][0]:
            damage(run)
    nan = copy_run(trained_run[0], Path("checkpoints/nan"))
    _nan_weights(nan)
    for age, run in enumerate([*[f"hostile{i}" for i in range(1, len(hostile) + 1)], "good", "nan"]):
        config = Path("checkpoints") / run / "config.json"
        if not config.is_symlink():
            os.utime(config, (1e9 + age, 1e9 + age))  # "nan" the newest: the default
    with deadline():
        runs, _ = Runs.find(None)
        runs.load_default()
        assert runs.default == "checkpoints/good"
        served = TestClient(create_app(runs), raise_server_exceptions=False)
        assert [r["checkpoint"] for r in served.get("/api/runs").json()] == ["checkpoints/good", "bundled"]
        for name in ["checkpoints/nan", *[f"checkpoints/hostile{i}" for i in range(1, len(hostile) + 1)]]:
            assert f"left out {name}" in caplog.text
            for response in (served.post("/api/predict", json={"story": "Mary went home.\nWhere is Mary?", "checkpoint": name}),
                             served.get("/api/about", params={"checkpoint": name})):
                assert 400 <= response.status_code < 500, (name, response.status_code, response.text)


# Two writers --------------------------------------------------------------------------------------


@contextmanager
def another_writer(folder: Path):
    """Another process that holds ``folder`` as its writer (checkpoint.writing), until the block
    ends; then it is killed, as a writer killed mid-run is (its lock file stays)."""
    code = ("import sys, time\nfrom pathlib import Path\nfrom memn2n_cli.checkpoint import writing\n"
            "with writing(Path(sys.argv[1]), 'resume it'):\n    print('held', flush=True)\n    time.sleep(600)\n")
    process = subprocess.Popen([sys.executable, "-c", code, str(folder)], stdout=subprocess.PIPE, text=True,
                               env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        assert process.stdout.readline() == "held\n"
        yield process
    finally:
        process.kill()
        process.wait()
        process.stdout.close()


def test_a_folder_has_one_writer_and_its_files_are_left_alone(cli, trained_run, tmp_path, en_dir, monkeypatch):
    """Issue 29, item 4: while another process writes a folder, `train` into it, `train --resume`
    and `sweep` fail at once with one line naming that process, by its lock even where the folder
    looks free, and its temporary files stay; its lock file hides nothing from `serve`. Once that
    writer is gone (killed), a resume takes the folder, removes what it left, and its lock file."""
    from memn2n_cli.qa.web import Runs

    folder = copy_run(trained_run[0], tmp_path / "checkpoints" / "run", manifest=True)
    (folder / "progress.safetensors").write_bytes(b"the other writer's")
    in_flight = folder / ".model.safetensors.abc123.tmp"
    train = ["train", "babi", "--task", "1", "--data-dir", en_dir, "--epochs", "1", "--ls-epochs", "1"]
    with another_writer(folder) as other:
        in_flight.write_bytes(b"half a model")
        monkeypatch.chdir(tmp_path)
        assert [r["checkpoint"] for r in Runs.find(None)[0].listing()] == ["checkpoints/run", "bundled"]
        named = f"is being written by process {other.pid}"
        assert_one_line_error(cli(*train, "--out", folder), named)
        assert_one_line_error(cli(*train, "--resume", folder), named, "wait for it to end")
        assert_one_line_error(cli("sweep", "babi", "--task", "1", "--restarts", "1", "--out", folder, "--data-dir", en_dir), named)
        monkeypatch.setattr(checkpoint, "live_writer", lambda directory: None)  # the lock alone decides
        assert_one_line_error(cli(*train, "--resume", folder), named)
        monkeypatch.undo()
        assert in_flight.read_bytes() == b"half a model" and (folder / "progress.safetensors").read_bytes() == b"the other writer's"
    assert (folder / checkpoint.LOCK_FILE).exists()  # killed: its lock file stays, held by no one
    (folder / "progress.safetensors").unlink()
    for name in ("config.json", "manifest.json"):
        (folder / name).unlink()  # a run that had not finished
    resumed = cli(*train, "--resume", folder)
    assert resumed.exit_code == 0, resumed.stderr
    assert not in_flight.exists() and not (folder / checkpoint.LOCK_FILE).exists()
    checkpoint.check_manifest(folder)
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    (fresh / checkpoint.LOCK_FILE).write_text("999999999 memn2n train (killed)\n")  # a writer killed at once
    assert cli(*train, "--out", fresh).exit_code == 0  # a folder holding only a dead writer's lock is empty


# A writer killed while saving ---------------------------------------------------------------------


def test_a_writer_killed_between_two_renames_leaves_a_save_the_next_writer_finishes(cli, trained_run, tmp_path, en_dir):
    """A save renames a model's files into place one by one: a writer killed between two renames
    leaves a folder that is neither the old model nor the new (refused by its manifest); the next
    writer (`train --resume`) finishes the renames, and the folder is the new model, whole."""
    run = copy_run(trained_run[0], tmp_path / "run", manifest=True)
    code = ("import json, os, sys\nfrom pathlib import Path\nfrom memn2n_cli import checkpoint\n"
            "run = Path(sys.argv[1])\n"
            "files = {n: json.dumps(json.loads((run / n).read_text()), indent=1).encode() for n in ('config.json', 'metrics.json')}\n"
            "files |= {n: (run / n).read_bytes() for n in ('model.safetensors', 'vocab.json')}\n"
            "(run / 'new').mkdir()\n"
            "for name, content in files.items():\n    (run / 'new' / name).write_bytes(content)\n"
            "replace, renamed = os.replace, []\n"
            "def killed(source, target):\n"
            "    if Path(target).name != checkpoint.RENAMES_FILE:\n"
            "        if renamed:\n            os._exit(9)\n"
            "        renamed.append(target)\n"
            "    replace(source, target)\n"
            "os.replace = killed\n"
            "checkpoint.write_run(run, files)\n")
    killed = subprocess.run([sys.executable, "-c", code, str(run)], env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert killed.returncode == 9
    new = {p.name: p.read_bytes() for p in (run / "new").iterdir()}
    shutil.rmtree(run / "new")
    assert (run / "config.json").read_bytes() == new["config.json"] and (run / "metrics.json").read_bytes() != new["metrics.json"]
    with pytest.raises(checkpoint.UserError, match="not the file manifest.json names"):
        checkpoint.check_manifest(run)
    resumed = cli("train", "babi", "--task", "1", "--data-dir", en_dir, "--epochs", "15", "--ls-epochs", "5", "--resume", run)
    assert resumed.exit_code == 0, resumed.stderr
    checkpoint.check_manifest(run)
    assert {name: (run / name).read_bytes() for name in new} == new
    assert sorted(p.name for p in run.iterdir() if p.name.startswith(".")) == []


@pytest.mark.parametrize("renames", [{"config.json": "manifest.json"}, {checkpoint.LOCK_FILE: f".{checkpoint.LOCK_FILE}.x.tmp"},
                                     {"": "..tmp"}, {"..": "....tmp"}, {"sub/config.json": ".config.json.x.tmp"}])
def test_a_list_of_renames_that_names_other_files_is_refused_and_renames_nothing(cli, trained_run, tmp_path, en_dir, renames):
    """The list of renames a killed writer leaves is only followed where each is a file of the run
    and a temporary of that file's own: a list that would move one of the run's files onto
    another, replace the lock the resume holds, or reach outside the folder is one line."""
    run = copy_run(trained_run[0], tmp_path / "run", manifest=True)
    (run / checkpoint.RENAMES_FILE).write_text(json.dumps(renames))
    for tmp in renames.values():
        if tmp.startswith("."):
            (run / tmp).write_text("planted")  # each temporary the list names is there (not manifest.json)
    resume = ["train", "babi", "--task", "1", "--data-dir", en_dir, "--epochs", "15", "--ls-epochs", "5", "--resume", run]
    assert_one_line_error(cli(*resume), f"{checkpoint.RENAMES_FILE}: corrupt list of renames")
    checkpoint.check_manifest(run)


# A full disk --------------------------------------------------------------------------------------


def fill_the_disk(monkeypatch, name: str, time: int) -> None:
    """From the ``time``-th write of a file called ``name`` on, writes fail as on a full disk: at
    checkpoint's lowest level, a file written aside that gets half its bytes, then ENOSPC."""
    write_all, calls = checkpoint._write_all, []

    def full(fd: int, content: bytes) -> None:
        calls.extend([1] if Path(os.readlink(f"/proc/self/fd/{fd}")).name.startswith(f".{name}.") else [])
        if len(calls) < time:
            return write_all(fd, content)
        write_all(fd, content[: len(content) // 2])
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))  # as os.write raises it: no file name

    monkeypatch.setattr(checkpoint, "_write_all", full)


def assert_disk_full(result, run: Path) -> None:
    """A failed run: exit code 1 and, after its progress, one line saying the disk is full and how
    to resume ``run``."""
    assert result.exit_code == 1, (result.exit_code, result.stderr, result.exception)
    errors = [line for line in result.stderr.splitlines() if line.startswith("error")]
    assert errors == [result.stderr.strip().splitlines()[-1]] and "Traceback" not in result.stderr, result.stderr
    assert errors[0].startswith(f"error: {run}: the disk is full (No space left on device") and f"--resume {run}" in errors[0]


def test_a_full_disk_fails_the_run_in_one_line_and_it_resumes_to_the_same_model(cli, tmp_path, en_dir, monkeypatch):
    """Issue 29, item 5: the disk fills as the finished model is written: exit 1, one line, and
    `--resume` (once there is space) ends with the weights of a run that never failed."""
    args = ["train", "babi", "--task", "1", "--data-dir", en_dir, "--epochs", "2", "--ls-epochs", "1"]
    assert cli(*args, "--out", tmp_path / "whole").exit_code == 0
    parts = tmp_path / "parts"
    fill_the_disk(monkeypatch, "model.safetensors", 1)
    assert_disk_full(cli(*args, "--out", parts), parts)
    monkeypatch.undo()
    assert not list(parts.glob(".*")) and not (parts / "config.json").exists()  # nothing half-written, no lock
    resumed = cli(*args, "--resume", parts)
    assert resumed.exit_code == 0, resumed.stderr
    assert (parts / "model.safetensors").read_bytes() == (tmp_path / "whole" / "model.safetensors").read_bytes()


def test_a_full_disk_outside_a_run_is_one_line_exit_1(cli, trained_run, tmp_path, monkeypatch):
    """A figure (or a download) that finds the disk full: one line, exit 1, not a traceback."""
    from memn2n_cli import plots

    def full(figure, out):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(plots, "draw", lambda data: None)
    monkeypatch.setattr(plots, "save_figure", full)
    result = cli("plot", trained_run[0], "--out", tmp_path / "curves.png")
    assert result.exit_code == 1, (result.stderr, result.exception)
    assert result.stderr == "error: the disk is full (No space left on device); free some space and run it again\n"
