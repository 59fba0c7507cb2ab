"""The `memn2n` command: the app of commands/app.py with every command registered on it.

The commands (memn2n_cli/commands/, one module each) parse their options, call the library
(memn2n_cli/recipes/ and below) and render what it returns.
"""

from memn2n_cli.commands import data, evaluate, plot, predict, serve, sweep, tasks, train, visualize  # noqa: F401 (registers)
from memn2n_cli.commands.app import app

__all__ = ["app"]
