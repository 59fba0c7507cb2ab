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

import json
import logging
import os
from pathlib import Path

from memn2n_cli.checkpoint import MAX_TEXT_BYTES, METRICS_FILE, STATE_FILE, json_value, read_file, read_json, write_files
from memn2n_cli.errors import UserError

HISTORY_FILE = "history.jsonl"
log = logging.getLogger("memn2n")


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
        """Add ``line`` at the end of the file (on disk before this returns) and to TensorBoard."""
        with open(self.path, "ab") as f:
            f.write(history_bytes([line]))
            f.flush()
            os.fsync(f.fileno())
        self.last = line
        self.epochs += is_epoch_line(line)
        if self.tensorboard is not None:
            _add_scalars(self.tensorboard, line, self.key)
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
    writer = _tensorboard(directory, purge_step=0)
    if writer is not None:
        for line in lines:
            _add_scalars(writer, line, key)
        writer.close()


def _add_scalars(writer, line: dict, key: str) -> None:
    for name, value in line.items():
        if name not in ("epoch", "step", "step_in_epoch", "steps_in_epoch") and isinstance(value, (int, float)):
            writer.add_scalar(name, value, line[key])


def _tensorboard(directory: Path, purge_step: int):
    """A TensorBoard writer for ``directory`` where the package is installed, else None; events
    at or after ``purge_step`` (written after the checkpoint a run resumes from) are dropped."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:  # torch says: TensorBoard logging requires TensorBoard
        return None
    return SummaryWriter(log_dir=str(directory), purge_step=purge_step)
