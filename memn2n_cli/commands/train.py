"""`memn2n train TASK`: train with the paper's recipe, print a Table 1-style summary.

The options' defaults are the configs' (ModelOptions, TrainConfig and JOINT for question
answering; LMConfig and LMTrainConfig for language models): an option left out is None here, and
the recipe of the task's kind fills it in.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Annotated

import typer

from memn2n_cli.commands.app import app, command
from memn2n_cli.commands.options import DataDir, Device, Json
from memn2n_cli.configs import JOINT, LMConfig, LMTrainConfig, ModelOptions, TrainConfig
from memn2n_cli.errors import UserError, not_a

QA, LM = "Model and training: question answering (Sections 2, 4)", "Model and training: language model (Section 5)"
Q, T, L, LT = ModelOptions, TrainConfig, LMConfig, LMTrainConfig  # where each default is written


def _on(flag: bool) -> str:
    return "on" if flag else "off"


def _option(help: str, panel: str | None = None, *names: str, **kwargs):
    return typer.Option(*names, help=help, rich_help_panel=panel, show_default=False, **kwargs)


@app.command()
@command
def train(
    task_name: Annotated[str, typer.Argument(metavar="TASK", help="A registered task (see `memn2n tasks`).")],
    task: Annotated[list[str] | None, typer.Option("--task", "-t", help="bAbI task number, repeatable, or 'all'. [default: 1]")] = None,
    joint: Annotated[bool, typer.Option(help=f"One model for all the tasks given (d={JOINT['dim']}, {JOINT['epochs']} epochs, halving every {JOINT['anneal_every']}).")] = False,
    data_dir: DataDir = None,
    out: Annotated[Path | None, typer.Option(help="Run directory. [default: checkpoints/TASK-task-TIME, or TASK-joint-TIME with --joint]")] = None,
    resume: Annotated[Path | None, typer.Option(help="Continue the interrupted run in this directory (question answering: keep its finished models).")] = None,
    json_output: Json = False,
    device: Device = "auto",
    # Both kinds, with defaults per kind
    hops: Annotated[int | None, _option(f"K, memory hops. [default: {Q.hops}; language model {L.hops}]")] = None,
    dim: Annotated[int | None, _option(f"d, embedding size. [default: {Q.dim}, {JOINT['dim']} with --joint; language model {L.dim}]")] = None,
    memory_size: Annotated[int | None, _option(f"Memories: sentences, or previous words of a language model. [default: {Q.memory_size}; language model {L.memory_size}]")] = None,
    init_std: Annotated[float | None, _option(f"Weights drawn from N(0, std). [default: {Q.init_std}; language model {L.init_std}]")] = None,
    lr: Annotated[float | None, _option(f"Learning rate (question answering: without linear start). [default: {T.lr}; language model {LT.lr}]")] = None,
    batch_size: Annotated[int | None, _option(f"Examples per step; the loss is summed. [default: {T.batch_size}; language model {LT.batch_size}]")] = None,
    max_grad_norm: Annotated[float | None, _option(f"Gradient L2 norm clipped to this. [default: {T.max_grad_norm:g}; language model {LT.max_grad_norm:g}]")] = None,
    seed: Annotated[int | None, _option(f"Seed of initialisation, batch order and noise. [default: {T.seed}]")] = None,
    # Question answering (Sections 2, 4.1, 4.2)
    encoding: Annotated[str | None, _option(f"Sentence representation: pe (position encoding) or bow. [default: {Q.encoding}]", QA)] = None,
    pe_formula: Annotated[str | None, _option(f"With pe: official (the authors' code) or paper (l_kj=(1-j/J)-(k/d)(1-2j/J)). [default: {Q.pe_formula}]", QA)] = None,
    temporal: Annotated[bool | None, _option(f"Temporal encoding T_A, T_C. [default: {_on(Q.temporal)}]", QA, "--temporal/--no-temporal")] = None,
    tying: Annotated[str | None, _option(f"Weight tying: adjacent or layerwise. [default: {Q.tying}]", QA)] = None,
    relu: Annotated[bool | None, _option(f"ReLU on the internal state after each hop (10k variant). [default: {_on(Q.relu)}]", QA, "--relu/--no-relu")] = None,
    empty_memories: Annotated[str | None, _option(f"zero: empty memory slots are zero vectors in the softmax, as in the authors' code; masked: they get no attention. [default: {Q.empty_memories}]", QA)] = None,
    epochs: Annotated[int | None, _option(f"Epochs after linear start. [default: {T.epochs}; {JOINT['epochs']} with --joint]", QA)] = None,
    anneal_every: Annotated[int | None, _option(f"Halve the learning rate every N epochs. [default: {T.anneal_every}; {JOINT['anneal_every']} with --joint]", QA)] = None,
    validation_fraction: Annotated[float | None, _option(f"Share of training stories held out. [default: {T.validation_fraction}]", QA)] = None,
    linear_start: Annotated[bool | None, _option(f"Linear start (LS). [default: {_on(T.linear_start)}]", QA, "--linear-start/--no-linear-start")] = None,
    ls_lr: Annotated[float | None, _option(f"Learning rate of a run with linear start. [default: {T.ls_lr}]", QA)] = None,
    ls_epochs: Annotated[int | None, _option(f"Epochs of the linear phase. [default: {T.ls_epochs}]", QA)] = None,
    ls_patience: Annotated[int | None, _option(f"End the linear phase after N epochs without a lower validation loss (1: the paper's rule); 0 = off. [default: {T.ls_patience}]", QA)] = None,
    random_noise: Annotated[float | None, _option(f"Share of empty memories inserted (RN); 0 = off. [default: {T.random_noise}]", QA)] = None,
    # Language model (Section 5)
    linear_dim: Annotated[int | None, _option("Units left linear; a ReLU on the rest. [default: half of --dim]", LM)] = None,
    max_epochs: Annotated[int | None, _option(f"Stop after this many epochs, if the learning rate has not fallen below {LT.min_lr:g} first. [default: {LT.max_epochs}]", LM)] = None,
    max_steps: Annotated[int | None, _option(f"Stop (and checkpoint) after this many steps in all; 0 = no bound. [default: {LT.max_steps}]", LM)] = None,
    checkpoint_every: Annotated[int | None, _option(f"Checkpoint, and print progress, every N steps within an epoch. [default: {LT.checkpoint_every:,}]", LM)] = None,
) -> None:
    """Train End-To-End Memory Networks: `memn2n train babi --task all --joint`, `memn2n train ptb --hops 7`."""
    from memn2n_cli.commands import kinds

    recipe = kinds.for_task(task_name)
    if resume is not None:
        if out is not None and out != resume:
            raise UserError("--resume names the run directory: leave out --out")
        if not resume.is_dir():
            raise not_a(resume, "run directory")
        out = resume
    from memn2n_cli.checkpoint import RUNS_DIR, check_new_run

    out = out or RUNS_DIR / f"{task_name}-{'joint' if joint else 'task'}-{datetime.now():%Y%m%d-%H%M%S}"

    check_new_run(out, resume is not None)
    options = dict(hops=hops, dim=dim, memory_size=memory_size, init_std=init_std, lr=lr, batch_size=batch_size,
                   max_grad_norm=max_grad_norm, seed=seed, encoding=encoding, pe_formula=pe_formula, temporal=temporal,
                   tying=tying, relu=relu, empty_memories=empty_memories, epochs=epochs, anneal_every=anneal_every,
                   validation_fraction=validation_fraction, linear_start=linear_start, ls_lr=ls_lr, ls_epochs=ls_epochs,
                   ls_patience=ls_patience, random_noise=random_noise, linear_dim=linear_dim, max_epochs=max_epochs,
                   max_steps=max_steps, checkpoint_every=checkpoint_every)
    recipe.train(task_name, tasks=task or [], joint=joint, data_dir=data_dir, out=out, resume=resume is not None,
                 device=device, json_output=json_output, options=options)
