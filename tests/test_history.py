"""history.jsonl and its TensorBoard copy: one line (and one scalar per figure) per epoch, written
as a run trains, each epoch once after a kill and --resume, or after a disk that filled and --resume."""

from __future__ import annotations

import errno
import json
import os
import threading
from pathlib import Path

import pytest

import memn2n_cli.qa.runs as runs
from memn2n_cli.errors import UserError
from memn2n_cli.history import HISTORY_FILE, read_history
from tests.test_run_directory import assert_disk_full

QUICK = ["--epochs", "4", "--ls-epochs", "1"]


def scalars(directory, name: str) -> list[tuple[int, float]]:
    """(step, value) of a scalar as TensorBoard reads the run's event files."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(directory))
    events.Reload()
    return [(e.step, e.value) for e in events.Scalars(name)]


def test_tensorboard_holds_each_epoch_once_after_a_kill_and_resume(cli, tmp_path, en_dir, monkeypatch):
    """Killed after the third epoch's line and scalars were written but before its progress was
    saved, then resumed: TensorBoard shows epochs 1-5 once each, with the figures of history.jsonl."""
    pytest.importorskip("tensorboard", reason="TensorBoard's event files need the optional extra memn2n[tensorboard]")
    save, calls = runs.write_progress, []

    def die_before_the_third(*arguments):
        calls.append(1)
        if len(calls) == 3:
            raise SystemError("killed")
        save(*arguments)

    monkeypatch.setattr(runs, "write_progress", die_before_the_third)
    args = ["train", "babi", "--task", "1", "--data-dir", en_dir, *QUICK, "--out", tmp_path / "run"]
    assert isinstance(cli(*args).exception, SystemError)
    monkeypatch.undo()
    assert [line["epoch"] for line in read_history(tmp_path / "run")] == [1, 2, 3]
    assert [step for step, _ in scalars(tmp_path / "run", "valid_error")] == [1, 2, 3]
    resumed = cli("train", "babi", "--resume", tmp_path / "run", "--data-dir", en_dir, "--task", "1", *QUICK)
    assert resumed.exit_code == 0, resumed.stderr
    lines = read_history(tmp_path / "run")
    assert [line["epoch"] for line in lines] == [1, 2, 3, 4, 5]  # one linear-start epoch, four more
    for name in ("valid_error", "train_error", "lr", "seconds"):
        assert scalars(tmp_path / "run", name) == [(line["epoch"], pytest.approx(line[name])) for line in lines]


def test_a_damaged_history_line_is_named(tmp_path):
    (tmp_path / HISTORY_FILE).write_text(json.dumps({"epoch": 1}) + "\n{not json\n")
    with pytest.raises(UserError, match=r"history.jsonl:2: not a JSON line"):
        read_history(tmp_path)
    (tmp_path / HISTORY_FILE).write_text(json.dumps({"epoch": 1}) + "\n" + json.dumps({"epoch": 2}))  # cut short
    assert read_history(tmp_path) == [{"epoch": 1}]


def full_history(monkeypatch, run: Path, epoch: int) -> str:
    """history.jsonl of ``run`` fails to reach the disk once it holds ``epoch`` lines: ENOSPC at its
    fsync, as a filesystem that allocates late (NFS, a quota) reports it."""
    fsync = os.fsync

    def full(fd: int) -> None:
        path = Path(os.readlink(f"/proc/self/fd/{fd}"))
        if path == run / HISTORY_FILE and len(path.read_text().splitlines()) >= epoch:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        fsync(fd)

    monkeypatch.setattr(os, "fsync", full)
    return HISTORY_FILE


def full_event_file(monkeypatch, run: Path, epoch: int) -> str:
    """TensorBoard's event file fails to take a record once the history of ``run`` holds ``epoch``
    lines (0: from the first record): ENOSPC from TensorBoard's record writer, which frames each
    event for the file."""
    from tensorboard.summary.writer.record_writer import RecordWriter

    write = RecordWriter.write

    def full(self, data: bytes) -> None:
        if len(read_history(run)) >= epoch:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        write(self, data)

    monkeypatch.setattr(RecordWriter, "write", full)
    return "events.out.tfevents."


@pytest.mark.parametrize("fill", [full_history, full_event_file])
def test_a_full_disk_while_writing_the_history_is_one_line_and_the_run_resumes(cli, tmp_path, en_dir, monkeypatch, fill):
    """Issue 29: the disk fills as the second epoch's line goes to history.jsonl, or its scalars to
    TensorBoard's event file: exit 1 and the one line of a full disk, naming the file, with no
    traceback, not even from a thread (TensorBoard's SummaryWriter wrote from one of its own: its
    traceback went to stderr and the run learnt of it a write later, at close never); `--resume`
    then finishes, each epoch once in both."""
    pytest.importorskip("tensorboard", reason="TensorBoard's event files need the optional extra memn2n[tensorboard]")
    monkeypatch.setattr(threading, "excepthook", threading.__excepthook__)  # a thread's traceback to stderr, as outside pytest
    run = tmp_path / "run"
    args = ["train", "babi", "--task", "1", "--data-dir", en_dir, *QUICK]
    name = fill(monkeypatch, run, 2)
    failed = cli(*args, "--out", run)
    assert_disk_full(failed, run)
    assert f"writing {run}/{name}" in failed.stderr, failed.stderr
    monkeypatch.undo()
    resumed = cli(*args, "--resume", run)
    assert resumed.exit_code == 0, resumed.stderr
    lines = read_history(run)
    assert [line["epoch"] for line in lines] == [1, 2, 3, 4, 5]
    assert scalars(run, "valid_error") == [(line["epoch"], pytest.approx(line["valid_error"])) for line in lines]


def test_a_full_disk_while_copying_a_sweep_trial_to_tensorboard_is_one_line(cli, tmp_path, en_dir, monkeypatch):
    """A sweep's trial, once trained, is copied to TensorBoard (history.to_tensorboard): there a
    full disk printed the traceback of SummaryWriter's thread. Now: exit 1 and the one line of a
    full disk, naming the event file; the same command, run again, finishes the sweep with the
    trial's scalars."""
    pytest.importorskip("tensorboard", reason="TensorBoard's event files need the optional extra memn2n[tensorboard]")
    monkeypatch.setattr(threading, "excepthook", threading.__excepthook__)  # a thread's traceback to stderr, as outside pytest
    out = tmp_path / "sweep"
    args = ["sweep", "babi", "--task", "1", "--restarts", "1", *QUICK, "--data-dir", en_dir, "--out", out]
    full_event_file(monkeypatch, out, 0)  # from the first record
    failed = cli(*args)
    assert failed.exit_code == 1, (failed.stderr, failed.exception)
    errors = [line for line in failed.stderr.splitlines() if line.startswith("error")]
    assert errors == [failed.stderr.strip().splitlines()[-1]] and "Traceback" not in failed.stderr, failed.stderr
    assert errors[0].startswith(f"error: {out}: the disk is full (No space left on device writing {out}/")
    assert "run the same `memn2n sweep` command" in errors[0]
    monkeypatch.undo()
    assert cli(*args).exit_code == 0
    [trial] = [model for model in out.glob("*/qa1")]
    assert [step for step, _ in scalars(trial, "valid_error")] == [line["epoch"] for line in read_history(trial)]


@pytest.mark.parametrize("case", ["this process, its 10th file after its 9th", "a new process, pid 1000 after 999"])
def test_event_files_of_the_same_second_are_read_in_the_order_they_were_written(tmp_path, monkeypatch, case):
    """TensorBoard reads a run's event files in the order of their names, and drops an earlier
    file's events at or after a later file's purge step: a run resumed within the second it
    stopped in (the library, a test, a kill and a quick resume) must name its file after the
    first, or TensorBoard shows only the epochs before the resume."""
    pytest.importorskip("tensorboard", reason="TensorBoard's event files need the optional extra memn2n[tensorboard]")
    import itertools

    from memn2n_cli import history

    second = 1_800_000_000
    new_process = case.startswith("a new process")
    monkeypatch.setattr(history, "_EVENT_FILES", itertools.count(9))

    def event_file(moment: int, pid: int, purge_step: int) -> history.EventFile:
        """A file made at ``moment`` (ns) by process ``pid``: the clock and the pid changed only meanwhile."""
        with monkeypatch.context() as m:
            m.setattr(history.time, "time_ns", lambda: moment)
            m.setattr(history.os, "getpid", lambda: pid)
            return history.EventFile(tmp_path, purge_step)

    # The same second: 0.1 s and 0.9 s into it, or (one process) the same nanosecond.
    moments = [second * 10**9 + 100_000_000, second * 10**9 + 900_000_000] if new_process else [second * 10**9] * 2
    pids = [999, 1000] if new_process else [1000, 1000]
    first = event_file(moments[0], pids[0], purge_step=0)
    for epoch in (1, 2):
        first.add({"epoch": epoch, "valid_error": 10.0 * epoch}, "epoch")
    first.close()
    resumed = event_file(moments[1], pids[1], purge_step=3)  # after the checkpoint of epoch 2
    for epoch in (3, 4):
        resumed.add({"epoch": epoch, "valid_error": 10.0 * epoch}, "epoch")
    resumed.close()
    assert sorted(p.name for p in tmp_path.iterdir()) == [first.path.name, resumed.path.name]
    assert scalars(tmp_path, "valid_error") == [(1, 10.0), (2, 20.0), (3, 30.0), (4, 40.0)]
