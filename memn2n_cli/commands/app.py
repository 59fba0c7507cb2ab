"""The Typer app every command registers on, and what all commands share: the one-line errors,
the consoles, the warnings on stderr. It imports no command (memn2n_cli/cli.py assembles them),
and nothing outside memn2n_cli/commands imports it: the library never loads Typer or Rich.

Data goes to stdout, progress and logs to stderr. Exit codes: 0 ok, 1 failed run, 2 bad input, 130 Ctrl-C, 143 SIGTERM.
"""

from __future__ import annotations

import functools
import json
import logging
import signal
import sys
import threading
from typing import Annotated

import typer
from rich.console import Console
from typer.core import TyperGroup

from memn2n_cli.allocator import keep_freed_memory
from memn2n_cli.errors import FULL_DISK, ArgumentError, ConfigError, DiskFull, Diverged, UserError, flag

try:
    from typer import _click as click  # recent Typer carries its own copy of Click
except ImportError:  # pragma: no cover - older Typer depends on Click
    import click


class OneLineErrors(TyperGroup):
    """Typer's own complaints (an unknown option, a value out of range) as one `error:` line and
    exit code 2, like every other bad input; a bare `memn2n` still shows the help."""

    def main(self, *args, standalone_mode: bool = True, **kwargs):
        if not standalone_mode:
            return super().main(*args, standalone_mode=False, **kwargs)
        try:
            code = super().main(*args, standalone_mode=False, **kwargs)
        except click.exceptions.NoArgsIsHelpError as e:
            e.show()
            sys.exit(e.exit_code)
        except click.ClickException as e:
            print(f"error: {e.format_message()}", file=sys.stderr)
            sys.exit(e.exit_code)
        sys.exit(code if isinstance(code, int) else 0)


def _no_placeholder_for_flags() -> None:
    """Typer's help shows a value's type beside every option, `<bool>` for flags too (`--json <bool>`,
    as if it took a value): a flag shows none."""
    from typer.core import TyperOption

    shown = TyperOption.display_type_rich
    TyperOption.display_type_rich = lambda self, ctx: None if self.is_flag else shown(self, ctx)


_no_placeholder_for_flags()
app = typer.Typer(cls=OneLineErrors, no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False,
                  rich_markup_mode="markdown",
                  help="End-To-End Memory Networks (Sukhbaatar et al. 2015): train, evaluate, inspect.")


def _print_version(value: bool) -> None:
    if value:
        from memn2n_cli import __version__

        print(f"memn2n {__version__}")
        raise typer.Exit()


@app.callback()
def main(version: Annotated[bool, typer.Option("--version", callback=_print_version, is_eager=True,
                                               help="Print the version and exit.")] = False) -> None:
    """End-To-End Memory Networks (Sukhbaatar et al. 2015): train, evaluate, inspect."""
data_app = typer.Typer(no_args_is_help=True, rich_markup_mode="markdown", help="Get datasets.")
app.add_typer(data_app, name="data")


def print_json(value) -> None:
    """``value`` as one line of standard JSON on stdout (--json): a number that is not finite (a
    diverged run's perplexity) as null (`finite_or_null`), as in a model card."""
    from memn2n_cli.checkpoint import finite_or_null

    print(json.dumps(finite_or_null(value), allow_nan=False))


def stdout() -> Console:
    return Console(file=sys.stdout, soft_wrap=True)


def stderr() -> Console:
    return Console(file=sys.stderr, soft_wrap=True)


class _StderrHandler(logging.Handler):
    """Warnings from the library, as 'warning: ...' lines on the current stderr."""

    def emit(self, record: logging.LogRecord) -> None:
        print(f"{record.levelname.lower()}: {record.getMessage()}", file=sys.stderr)


def _stop(signum, frame) -> None:
    """SIGTERM (kill, a scheduler's time limit) ends a command as Ctrl-C does, unwinding: a sweep's
    workers are stopped and its pool closed (killed outright, Python warned of leaked semaphores),
    a write half done is undone. Exit code 143, the shell's 128 + 15."""
    raise SystemExit(128 + signum)


def command(function):
    """Register a command; a UserError or ConfigError becomes one line on stderr and exit code 2, and
    so does an OSError on a path (a file given as --out, a folder that cannot be made), naming it.
    A disk that fills, or a model that diverges, is one line too, with exit code 1: the run failed,
    and the line says how to go on."""

    @functools.wraps(function)
    def run(*args, **kwargs):
        keep_freed_memory()  # training steps free and re-allocate the same large tensors
        if threading.current_thread() is threading.main_thread():  # only there can Python take a signal
            signal.signal(signal.SIGTERM, _stop)
        logger = logging.getLogger("memn2n")
        if not logger.handlers:
            logger.addHandler(_StderrHandler())
            logger.setLevel(logging.INFO)
        try:
            return function(*args, **kwargs)
        except ArgumentError as e:
            print(f"error: {e.render(flag)}", file=sys.stderr)
            raise typer.Exit(2) from None
        except UserError as e:
            print(f"error: {e}", file=sys.stderr)
            raise typer.Exit(2) from None
        except ConfigError as e:
            print(f"error: {e.render(flag)}", file=sys.stderr)
            raise typer.Exit(2) from None
        except (DiskFull, Diverged) as e:  # a failed run: a full disk can be resumed, a diverged one says what to change
            print(f"error: {e}", file=sys.stderr)
            raise typer.Exit(1) from None
        except OSError as e:
            if e.errno in FULL_DISK:  # outside a run: a download, a figure
                where = f"{e.filename}: " if e.filename else ""
                print(f"error: {where}the disk is full ({e.strerror}); free some space and run it again", file=sys.stderr)
                raise typer.Exit(1) from None
            if e.filename is None:  # not about a path: a broken pipe, a failed device
                raise
            print(f"error: {e.filename}: {e.strerror or e}", file=sys.stderr)
            raise typer.Exit(2) from None

    return run
