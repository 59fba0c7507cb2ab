"""The one exception type for bad input: missing or malformed data, unknown names, corrupt runs.

The CLI prints it as a single line on stderr and exits with code 2, without a traceback.
"""

from __future__ import annotations

from pathlib import Path


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
