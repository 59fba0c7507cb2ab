"""A run's metrics as they happen: ``history.jsonl`` in its model directory, one JSON line per
epoch (and, for a language model, one per progress checkpoint within an epoch), appended as the
run trains, so that ``tail -f`` follows it; the same scalars go to TensorBoard event files in the
directory where the ``tensorboard`` package is installed (``pip install 'memn2n[tensorboard]'``).

The lines, for either kind of task:

- an epoch's line is the record the run's own history holds (``epoch``, ``lr``, the splits'
  figures: ``train_error``/``valid_error`` in percent for question answering,
  ``train_perplexity``/``valid_perplexity`` for a language model), with ``seconds``, the training
  time of the run so far; a language model's also has ``step``, its steps in all;
- a language model's progress line, written with each checkpoint inside an epoch, has
  ``step_in_epoch`` and ``steps_in_epoch`` besides ``epoch`` (the epoch under way), ``step``,
  ``lr``, the training perplexity so far and ``seconds``.

While a run trains the file is outside the manifest's checks (it grows after each checkpoint);
a finished run's manifest covers it. A run resumed from its last checkpoint first drops the lines
written after that checkpoint, so that after a kill and ``--resume`` the file holds each epoch
once. A run written before this file existed has its history in metrics.json (question
answering) or state.json (language model): `read_history` reads it from there.
"""

from __future__ import annotations

import importlib.util
import itertools
import json
import logging
import os
import socket
import time
from contextlib import contextmanager
from pathlib import Path

from memn2n_cli.checkpoint import MAX_TEXT_BYTES, METRICS_FILE, STATE_FILE, json_value, read_file, read_json, write_files
from memn2n_cli.errors import UserError

HISTORY_FILE = "history.jsonl"
log = logging.getLogger("memn2n")
_EVENT_FILES = itertools.count()  # this process's event files: each name is new, as SummaryWriter's are


class History:
    """A run's history.jsonl, opened where the run's checkpoint is.

    ``key`` orders the lines ("epoch" for question answering, "step" for a language model) and is
    TensorBoard's step; ``at``: the checkpoint's value of it; lines beyond it are dropped.
    ``earlier``: the epoch records the checkpoint holds, written out for a run that has no file yet."""

    def __init__(self, directory: Path, key: str, at: int = 0, earlier: list[dict] = ()):
        self.path, self.key = directory / HISTORY_FILE, key
        kept = [line for line in _lines(self.path) if line.get(key, 0) <= at] if self.path.exists() else []
        if sum(map(is_epoch_line, kept)) < len(earlier):  # written before this file existed
            kept = [dict(record) for record in earlier]
        write_files(directory, {HISTORY_FILE: history_bytes(kept)})
        self.seconds = float(kept[-1].get("seconds", 0.0)) if kept else 0.0
        self.last = kept[-1] if kept else None
        self.epochs = sum(map(is_epoch_line, kept))
        self.tensorboard = _tensorboard(directory, purge_step=at + 1)

    def append(self, line: dict) -> None:
        """Add ``line`` at the end of the file and to TensorBoard, on disk before this returns (a
        full disk is an OSError naming the file, which `checkpoint.writing` makes a DiskFull)."""
        with naming(self.path), open(self.path, "ab") as f:
            f.write(history_bytes([line]))
            f.flush()
            os.fsync(f.fileno())
        self.last = line
        self.epochs += is_epoch_line(line)
        if self.tensorboard is not None:
            self.tensorboard.add(line, self.key)
            self.tensorboard.flush()

    def content(self) -> bytes:
        """The file as it is now: what a finished run's manifest covers."""
        return self.path.read_bytes()

    def close(self) -> None:
        if self.tensorboard is not None:
            self.tensorboard.close()


def is_epoch_line(line: dict) -> bool:
    """An epoch's line, not a language model's progress line within an epoch."""
    return "step_in_epoch" not in line


def history_bytes(lines: list[dict]) -> bytes:
    """The file of these lines."""
    return "".join(json.dumps(line) + "\n" for line in lines).encode()


def _lines(path: Path) -> list[dict]:
    """The lines of a history file; a UserError naming the line that is not a JSON object. A last
    line without its newline (a write cut short) is left out. The file is read as a run's files
    are (checkpoint.read_file: a regular file, of bounded size)."""
    try:
        text = read_file(path, MAX_TEXT_BYTES).decode()
    except UnicodeDecodeError as e:
        raise UserError(f"cannot read: {e}", path) from None
    rows = text.split("\n")
    lines = []
    for number, row in enumerate(rows[:-1], 1):  # rows[-1]: after the last newline
        try:
            line = json_value(row)
        except ValueError as e:  # malformed, or nested too deep
            raise UserError(f"not a JSON line ({getattr(e, 'msg', e)})", path, number) from None
        if not isinstance(line, dict):
            raise UserError("not a JSON object", path, number)
        lines.append(line)
    return lines


def read_history(directory: Path) -> list[dict]:
    """A model directory's history: the lines of its history.jsonl, or, for a run written before
    that file existed, the epoch records its metrics.json or state.json holds."""
    if (directory / HISTORY_FILE).exists():
        return _lines(directory / HISTORY_FILE)
    for name in (METRICS_FILE, STATE_FILE):
        if (directory / name).exists():
            history = read_json(directory / name).get("history", [])
            if not isinstance(history, list) or not all(isinstance(record, dict) for record in history):
                raise UserError("'history' is not a list of epoch records", directory / name)
            return history
    return []


def to_tensorboard(directory: Path, lines: list[dict], key: str) -> None:
    """TensorBoard's copy of a history written whole (a sweep's trial, trained elsewhere), where
    the package is installed; it replaces any earlier copy (a trial trained again)."""
    events = _tensorboard(directory, purge_step=0)
    if events is not None:
        for line in lines:
            events.add(line, key)
        events.close()


def _tensorboard(directory: Path, purge_step: int) -> EventFile | None:
    """A new TensorBoard event file in ``directory`` where the package is installed, else None."""
    return EventFile(directory, purge_step) if importlib.util.find_spec("tensorboard") else None


class EventFile:
    """A TensorBoard event file, as torch's SummaryWriter writes one (TFRecord-framed Event
    protocol buffers, each line's figures one scalar each at step ``line[key]``), but written in
    the caller's thread: a write that fails (a full disk) is an OSError naming the file, raised to
    the run, which `checkpoint.writing` makes a DiskFull. SummaryWriter writes from a thread of its
    own: there a full disk printed that thread's traceback, reached the run a write later, and at
    close not at all. TensorBoard drops the events of earlier files at or after ``purge_step``
    (written after the checkpoint a run resumes from), as for SummaryWriter(purge_step=...)."""

    def __init__(self, directory: Path, purge_step: int):
        from tensorboard.compat.proto.event_pb2 import Event, SessionLog
        from tensorboard.summary.writer.record_writer import RecordWriter

        # TensorBoard reads a folder's files in the order of their names: the time to the
        # nanosecond, then this process's count, both of fixed width, order them as they were
        # made (SummaryWriter's name, to the second with an unpadded pid and count, did not
        # within a second: "...999.9" after "...1000.10").
        now = time.time_ns()
        name = (f"events.out.tfevents.{now // 10**9:010d}.{now % 10**9:09d}.{next(_EVENT_FILES):06d}."
                f"{socket.gethostname()}.{os.getpid()}")
        self.path = directory / name
        with naming(self.path):
            self.file = open(self.path, "wb")
        self.records = RecordWriter(self.file)
        self.write(Event(wall_time=time.time(), file_version="brain.Event:2"))
        self.write(Event(wall_time=time.time(), step=purge_step, session_log=SessionLog(status=SessionLog.START)))

    def add(self, line: dict, key: str) -> None:
        """Each figure of ``line`` (not the counters that say where it is) as a scalar at step ``line[key]``."""
        from tensorboard.compat.proto.event_pb2 import Event
        from tensorboard.compat.proto.summary_pb2 import Summary

        figures = [Summary.Value(tag=name, simple_value=value) for name, value in line.items()
                   if name not in ("epoch", "step", "step_in_epoch", "steps_in_epoch") and isinstance(value, (int, float))]
        self.write(Event(wall_time=time.time(), step=line[key], summary=Summary(value=figures)))

    def write(self, event) -> None:
        with naming(self.path):
            self.records.write(event.SerializeToString())

    def flush(self) -> None:
        """On disk before this returns, as history.jsonl's lines are."""
        with naming(self.path):
            self.file.flush()
            os.fsync(self.file.fileno())

    def close(self) -> None:
        self.flush()
        self.file.close()


@contextmanager
def naming(path: Path):
    """An OSError inside the block that names no file (a write's) names ``path``, as checkpoint's
    writes name theirs: "the disk is full (... writing PATH)"."""
    try:
        yield
    except OSError as e:
        if e.errno is None or e.filename is not None:
            raise
        raise type(e)(e.errno, e.strerror, str(path)) from None
