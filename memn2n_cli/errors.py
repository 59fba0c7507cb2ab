"""The exception types for bad input: missing or malformed data, unknown names, corrupt runs
(UserError), and option values that cannot be trained (ConfigError); and for a run that failed:
for want of disk space (DiskFull), or because its weights diverged (Diverged).

The CLI prints each as a single line on stderr, without a traceback, and exits with code 2 for
bad input, 1 for a failed run.
"""

from __future__ import annotations

import dataclasses
import errno
import math
import re
import reprlib
from pathlib import Path
from typing import Callable


class UserError(Exception):
    """Something the user gave us is wrong; ``path`` and ``line`` say where, when known."""

    def __init__(self, message: str, path: str | Path | None = None, line: int | None = None):
        super().__init__(message)
        self.message = message
        self.path = path
        self.line = line

    def __str__(self) -> str:
        where = ""
        if self.path is not None:
            where = f"{self.path}:{self.line}: " if self.line is not None else f"{self.path}: "
        return where + self.message


def not_a(path: Path, what: str) -> UserError:
    """The error for ``path``, which is not the ``what`` asked for ("story file", "data directory"):
    not there at all, or something else is ("is a folder, not a story file")."""
    if not path.exists():
        return UserError(f"{what} not found", path)
    found = "a folder" if path.is_dir() else "a file" if path.is_file() else "a device or a pipe"
    return UserError(f"is {found}, not a {what}", path)


class ArgumentError(UserError):
    """A bad argument of a command or of a library function, by a rule the library checks once:
    the message names the argument as its caller wrote it, ``--data-dir`` on the command line and
    ``data_dir=`` in Python. ``message`` holds ``{}`` where the name goes."""

    def __init__(self, argument: str, message: str, path: str | Path | None = None):
        super().__init__(message, path)
        self.argument = argument

    def render(self, name: Callable[[str], str]) -> str:
        """The message with the argument named by ``name`` (`flag` on the command line)."""
        return str(UserError(self.message.replace("{}", name(self.argument)), self.path, self.line))

    def __str__(self) -> str:
        return self.render(lambda argument: f"{KEYWORDS.get(argument, argument)}=")


class ConfigError(ValueError):
    """An option value, or a combination of them, that cannot be trained: raised by the configs'
    own checks, so the library, the CLI and sweep grids say the same. The message names options as
    ``{field}``: plainly in Python (``random_noise``), as flags on the command line (``--random-noise``)."""

    def __init__(self, template: str):
        super().__init__(template)
        self.template = template

    def render(self, name: Callable[[str], str]) -> str:
        return re.sub(r"\{(\w+)\}", lambda m: name(m.group(1)), self.template)

    def __str__(self) -> str:
        return self.render(lambda field: field)


class Diverged(Exception):
    """A question-answering model whose training loss stopped being finite in ``epoch``: its
    training stopped there, and ``run`` holds what it reached (weights of NaN or infinity, which
    nothing loads). A failed run, not bad input: the options were valid, the training was not."""

    def __init__(self, run: str | Path, epoch: int):
        super().__init__(run, epoch)
        self.run, self.epoch = run, epoch

    def __str__(self) -> str:
        return (f"{self.run}: diverged in epoch {self.epoch} (training loss not finite) and stopped; "
                "train it again, into another folder, with a smaller learning rate")


class DiskFull(OSError):
    """The disk (or the user's quota) filled while ``run`` was being written: a failed run, not bad
    input. Every file is written aside and renamed into place, so what the run had saved is whole;
    ``resume`` says how to go on from it once there is space."""

    def __init__(self, error: OSError, run: str | Path, resume: str):
        super().__init__(error.errno, error.strerror, error.filename)
        self.run, self.resume = run, resume

    def __str__(self) -> str:
        where = f" writing {self.filename}" if self.filename else ""
        return (f"{self.run}: the disk is full ({self.strerror}{where}); the run keeps its last checkpoint: "
                f"free some space, then {self.resume}")


FULL_DISK = (errno.ENOSPC, errno.EDQUOT)  # no space left, or the user's quota used up


FLAGS = {"next_words": "--next", "model_task": "--task"}  # the options whose flag is not their name
KEYWORDS = {"model_task": "task"}  # the options whose keyword in the library (memn2n.answer) is not their name


def check_text(value, argument: str) -> None:
    """An ArgumentError unless ``value``, the library's ``argument`` (a story, a prompt), is a string."""
    if not isinstance(value, str):
        raise ArgumentError(argument, f"{{}} must be a string, not {reprlib.repr(value)}")


def flag(field: str) -> str:
    """The command-line flag of a config field or option: ``random_noise`` -> ``--random-noise``,
    ``next_words`` -> ``--next`` (`FLAGS`)."""
    return FLAGS.get(field) or "--" + field.replace("_", "-")


_KINDS = {"int": ((int,), "a whole number"), "float": ((int, float), "a finite number"), "bool": ((bool,), "true or false"),
          "str": ((str,), "a string")}


def of_types(config) -> None:
    """ConfigError unless every field of the dataclass ``config`` declared int, float, bool or str
    (or one of them ``| None``) holds a value of that type: True is no number, 20.0 no whole number,
    NaN and infinity no number to train with (a learning rate of NaN trained a run of NaN weights)."""
    for field in dataclasses.fields(config):
        kind, _, optional = str(field.type).partition(" | ")
        value = getattr(config, field.name)
        if kind not in _KINDS or (value is None and optional == "None"):
            continue
        types, described = _KINDS[kind]
        if (isinstance(value, bool) != (kind == "bool") or not isinstance(value, types)
                or (kind == "float" and not math.isfinite(value))):
            raise ConfigError(f"{{{field.name}}} must be {described}, not {value!r}")


def more_than(config, minimum: float, *fields: str) -> None:
    """ConfigError unless every one of ``fields`` of ``config`` is more than ``minimum``."""
    for field in fields:
        if not getattr(config, field) > minimum:
            raise ConfigError(f"{{{field}}} must be more than {minimum:g}, not {getattr(config, field)!r}")


def at_least(config, minimum: float, *fields: str) -> None:
    """ConfigError unless every one of ``fields`` of ``config`` is at least ``minimum`` (NaN is not)."""
    for field in fields:
        if not getattr(config, field) >= minimum:
            raise ConfigError(f"{{{field}}} must be at least {minimum:g}, not {getattr(config, field)!r}")


def at_most(config, maximum: float, *fields: str) -> None:
    """ConfigError unless every one of ``fields`` of ``config`` is at most ``maximum`` (NaN is not)."""
    for field in fields:
        if not getattr(config, field) <= maximum:
            raise ConfigError(f"{{{field}}} must be at most {maximum:,}, not {getattr(config, field)!r}")


def one_of(config, field: str, allowed: tuple) -> None:
    """ConfigError unless ``config.field`` is one of ``allowed``."""
    if getattr(config, field) not in allowed:
        raise ConfigError(f"{{{field}}} is {' or '.join(allowed)}, not {getattr(config, field)!r}")
