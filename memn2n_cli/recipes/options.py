"""Options as the commands pass them to a recipe: None where the user gave none; and which
options belong to one kind of task only (from the configs' fields, not a list kept by hand)."""

from __future__ import annotations

from memn2n_cli.configs import LMConfig, LMTrainConfig, ModelOptions, TrainConfig, fields_of
from memn2n_cli.errors import ArgumentError, UserError, flag

_QA, _LM = fields_of(ModelOptions) | fields_of(TrainConfig), fields_of(LMConfig) | fields_of(LMTrainConfig)
QA_ONLY = (*sorted(_QA - _LM), "model_task", "top_k")  # and `predict`/`visualize --task`, `predict --top-k`
LM_ONLY = (*sorted(_LM - _QA), "next_words")  # and `predict --next`


def given(options: dict) -> dict:
    """The options the user gave (not None): the configs' defaults fill in the rest."""
    return {k: v for k, v in options.items() if v is not None}


def refuse(options: dict, names: tuple[str, ...], kind: str) -> None:
    """An ArgumentError naming the first of ``names`` given in ``options``: an option of ``kind`` only."""
    for name in names:
        if options.get(name) is not None:
            raise ArgumentError(name, f"{{}} is an option of {kind}")


def check_preset(task: str, presets: dict[str, dict[str, dict]], preset: str | None, column: list[str],
                 options: dict[str, list]) -> None:
    """The rules of `sweep --preset NAME --column LABEL`, for every kind of task: a known preset, its
    own columns, no grid of several values, and no option the preset's columns set themselves."""
    if column and preset is None:
        raise UserError("--column names a column of a --preset")
    if preset is None:
        return
    if preset not in presets:
        raise UserError(f"--preset is {' or '.join(presets) or 'not available for ' + task}, not {preset!r}")
    unknown = [name for name in column if name not in presets[preset]]
    if unknown:
        raise UserError(f"--column {unknown[0]!r} is not a column of {preset}: {', '.join(presets[preset])}")
    if any(len(values) > 1 for values in options.values()):
        raise UserError(f"--preset {preset} names its columns: it takes no --grid of several values")
    clash = sorted(options.keys() & {k for chosen in presets[preset].values() for k in chosen})
    if clash:
        raise UserError(f"--preset {preset} sets {flag(clash[0])} for its columns itself")


BACKENDS = ("local", "ray")  # a sweep's: a pool of processes here, or Ray tasks on a cluster


def check_backend(backend: str) -> None:
    if backend not in BACKENDS:
        raise ArgumentError("backend", "{} is " + " or ".join(BACKENDS) + f", not {backend!r}")
