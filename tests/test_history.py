"""history.jsonl and its TensorBoard copy: one line (and one scalar per figure) per epoch, written
as a run trains, each epoch once after a kill and --resume."""

from __future__ import annotations

import json

import pytest

import memn2n_cli.qa.runs as runs
from memn2n_cli.errors import UserError
from memn2n_cli.history import HISTORY_FILE, read_history

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
