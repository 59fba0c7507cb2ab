"""Text files as every task reads them: UTF-8 lines, with one clear error for a binary, empty
or undecodable file (naming the file, and the line where there is one)."""

from __future__ import annotations

import codecs
from pathlib import Path

from memn2n_cli.errors import UserError


def read_lines(path: Path) -> list[str]:
    """A data file's lines; unreadable, binary, empty or undecodable files raise UserError."""
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise UserError(f"cannot read: {e.strerror}", path) from None
    return decode_lines(raw, path)


def decode_lines(raw: bytes, path) -> list[str]:
    """UTF-8 text as lines; binary, empty or undecodable input raises UserError. A byte-order mark
    (which Windows editors write first) is no part of the first line."""
    raw = raw.removeprefix(codecs.BOM_UTF8)
    if b"\x00" in raw:
        raise UserError("not a text file", path)
    if not raw.decode("utf-8", "replace").strip():  # Unicode blanks too
        raise UserError("empty file", path)
    lines = []
    for lineno, line in enumerate(raw.splitlines(), 1):
        try:
            lines.append(line.decode("utf-8"))
        except UnicodeDecodeError:
            raise UserError("not UTF-8 text", path, lineno) from None
    return lines
