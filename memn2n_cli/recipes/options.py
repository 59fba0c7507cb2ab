"""Options as the commands pass them to a recipe: None where the user gave none."""

from __future__ import annotations

from memn2n_cli.errors import UserError, flag


def given(options: dict) -> dict:
    """The options the user gave (not None): the configs' defaults fill in the rest."""
    return {k: v for k, v in options.items() if v is not None}


def refuse(options: dict, names: tuple[str, ...], kind: str) -> None:
    """A UserError naming the first of ``names`` given in ``options``: an option of ``kind`` only."""
    for name in names:
        if options.get(name) is not None:
            raise UserError(f"{flag(name)} is an option of {kind}")
