"""Options as the commands pass them to a recipe: None where the user gave none; and which
options belong to one kind of task only (from the configs' fields, not a list kept by hand)."""

from __future__ import annotations

from memn2n_cli.configs import LMConfig, LMTrainConfig, ModelOptions, TrainConfig, fields_of
from memn2n_cli.errors import UserError, flag

_QA, _LM = fields_of(ModelOptions) | fields_of(TrainConfig), fields_of(LMConfig) | fields_of(LMTrainConfig)
QA_ONLY = (*sorted(_QA - _LM), "model_task")  # and `predict`/`visualize --task`
LM_ONLY = (*sorted(_LM - _QA), "next_words")  # and `predict --next`


def given(options: dict) -> dict:
    """The options the user gave (not None): the configs' defaults fill in the rest."""
    return {k: v for k, v in options.items() if v is not None}


def refuse(options: dict, names: tuple[str, ...], kind: str) -> None:
    """A UserError naming the first of ``names`` given in ``options``: an option of ``kind`` only."""
    for name in names:
        if options.get(name) is not None:
            raise UserError(f"{flag(name)} is an option of {kind}")
