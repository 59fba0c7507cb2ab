"""`memn2n train TASK`: train with the paper's recipe, print a Table 1-style summary."""

from __future__ import annotations

import json
import os
import sys
from datetime import datetime
from pathlib import Path
from typing import Annotated

import typer

from memn2n_cli.cli import app, command, stderr, stdout
from memn2n_cli.commands.options import DataDir, Device, Json
from memn2n_cli.errors import UserError

def _progress_reporter(config, label_count: int):
    """A rich progress bar on a terminal, else a plain line every 10 epochs and at phase changes."""
    if not sys.stderr.isatty():
        last_phase: dict[str, str] = {}

        def plain(label: str, record: dict) -> None:
            if record["epoch"] % 10 == 0 or last_phase.setdefault(label, record["phase"]) != record["phase"]:
                last_phase[label] = record["phase"]
                valid = f" valid {record['valid_error']:.1f}%" if "valid_error" in record else ""
                print(f"{label} epoch {record['epoch']} ({record['phase']}, lr {record['lr']:.5f}): "
                      f"train {record['train_error']:.1f}%{valid}", file=sys.stderr, flush=True)
        return plain, None

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                        TextColumn("{task.fields[status]}"), TimeElapsedColumn(), console=stderr())
    bars: dict[str, int] = {}

    def fancy(label: str, record: dict) -> None:
        if label not in bars:
            linear = config.ls_epochs if config.linear_start else 0
            bars[label] = progress.add_task(label, total=config.epochs + linear, status="")
        bar = bars[label]
        if record["phase"] == "softmax" and progress.tasks[bar].fields["status"].startswith("linear"):
            progress.update(bar, total=record["epoch"] - 1 + config.epochs)  # linear start ended early
        valid = f"valid {record['valid_error']:.1f}%" if "valid_error" in record else ""
        progress.update(bar, completed=record["epoch"],
                        status=f"{record['phase']} lr {record['lr']:.4f} train {record['train_error']:.1f}% {valid}")

    return fancy, progress


BABI, LM = "Model and training: bAbI (Sections 2, 4)", "Model and training: language model (Section 5)"


@app.command()
@command
def train(
    task_name: Annotated[str, typer.Argument(metavar="TASK", help="A registered task (see `memn2n tasks`).")],
    task: Annotated[list[str] | None, typer.Option("--task", "-t", help="bAbI task number, repeatable, or 'all'. [default: 1]")] = None,
    joint: Annotated[bool, typer.Option(help="One model for all the tasks given (d=50, 60 epochs, halving every 15).")] = False,
    data_dir: DataDir = None,
    out: Annotated[Path | None, typer.Option(help="Run directory. [default: checkpoints/<task>-<time>]")] = None,
    resume: Annotated[Path | None, typer.Option(help="Continue the interrupted run in this directory (bAbI: keep its finished models).")] = None,
    json_output: Json = False,
    # Shared, with defaults per task
    hops: Annotated[int | None, typer.Option(min=1, help="K, memory hops. [default: 3; language model 6]")] = None,
    dim: Annotated[int | None, typer.Option(min=1, help="d, embedding size. [default: 20, 50 with --joint; language model 150]")] = None,
    memory_size: Annotated[int | None, typer.Option(min=1, help="Memories: sentences (bAbI) or previous words (language model). [default: 50; 100]")] = None,
    init_std: Annotated[float | None, typer.Option(min=0.0, help="Weights drawn from N(0, std). [default: 0.1; language model 0.05]")] = None,
    lr: Annotated[float, typer.Option(min=0.0, help="Learning rate (bAbI: without linear start).")] = 0.01,
    batch_size: Annotated[int | None, typer.Option(min=1, help="Examples per step; the loss is summed. [default: 32; language model 128]")] = None,
    max_grad_norm: Annotated[float | None, typer.Option(min=0.0, help="Gradient L2 norm clipped to this. [default: 40; language model 50]")] = None,
    seed: Annotated[int, typer.Option(help="Seed of initialisation, batch order and noise.")] = 0,
    device: Device = "auto",
    # bAbI (Sections 2, 4.1, 4.2)
    encoding: Annotated[str, typer.Option(help="Sentence representation: pe (position encoding) or bow.", rich_help_panel=BABI)] = "pe",
    pe_formula: Annotated[str, typer.Option(help="With pe: official (the authors' code) or paper (l_kj=(1-j/J)-(k/d)(1-2j/J)).", rich_help_panel=BABI)] = "official",
    temporal: Annotated[bool, typer.Option(help="Temporal encoding T_A, T_C.", rich_help_panel=BABI)] = True,
    tying: Annotated[str, typer.Option(help="Weight tying: adjacent or layerwise.", rich_help_panel=BABI)] = "adjacent",
    relu: Annotated[bool, typer.Option(help="ReLU on the internal state after each hop (10k variant).", rich_help_panel=BABI)] = False,
    empty_memories: Annotated[str, typer.Option(help="zero: empty memory slots are zero vectors in the softmax, as in the authors' code; masked: they get no attention.", rich_help_panel=BABI)] = "zero",
    epochs: Annotated[int | None, typer.Option(min=1, help="Epochs after linear start. [default: 100; 60 with --joint]", rich_help_panel=BABI)] = None,
    anneal_every: Annotated[int | None, typer.Option(min=1, help="Halve the learning rate every N epochs. [default: 25; 15 with --joint]", rich_help_panel=BABI)] = None,
    validation_fraction: Annotated[float, typer.Option(min=0.0, max=0.9, help="Share of training stories held out.", rich_help_panel=BABI)] = 0.1,
    linear_start: Annotated[bool, typer.Option(help="Linear start (LS).", rich_help_panel=BABI)] = True,
    ls_lr: Annotated[float, typer.Option(min=0.0, help="Learning rate of a run with linear start.", rich_help_panel=BABI)] = 0.005,
    ls_epochs: Annotated[int, typer.Option(min=1, help="Epochs of the linear phase.", rich_help_panel=BABI)] = 20,
    ls_patience: Annotated[int, typer.Option(min=0, help="End the linear phase after N epochs without a lower validation loss (1: the paper's rule); 0 = off.", rich_help_panel=BABI)] = 0,
    random_noise: Annotated[float, typer.Option(min=0.0, max=1.0, help="Share of empty memories inserted (RN); 0 = off.", rich_help_panel=BABI)] = 0.1,
    # Language model (Section 5)
    linear_dim: Annotated[int | None, typer.Option(min=0, help="Units left linear; a ReLU on the rest. [default: half of --dim]", rich_help_panel=LM)] = None,
    max_epochs: Annotated[int, typer.Option(min=1, help="Stop after this many epochs, if the learning rate has not fallen below 1e-5 first.", rich_help_panel=LM)] = 100,
    max_steps: Annotated[int, typer.Option(min=0, help="Stop (and checkpoint) after this many steps in all; 0 = no bound.", rich_help_panel=LM)] = 0,
) -> None:
    """Train End-To-End Memory Networks: `memn2n train babi --task all --joint`, `memn2n train ptb --hops 7`."""
    from tasks import get_task

    kind = get_task(task_name).kind
    if device.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            raise UserError(f"--device {device}: no CUDA device is available")
    if resume is not None:
        if out is not None and out != resume:
            raise UserError("--resume names the run directory: leave out --out")
        if not resume.is_dir():
            raise UserError("run directory not found", resume)
        out = resume
    out = out or Path("checkpoints") / f"{task_name}-{'joint' if joint else 'task'}-{datetime.now():%Y%m%d-%H%M%S}"
    if resume is None and out.exists() and any(out.iterdir()):
        raise UserError("already holds files; choose another --out, or --resume it", out)
    if kind == "lm":
        given = dict(hops=hops, dim=dim, memory_size=memory_size, linear_dim=linear_dim, init_std=init_std,
                     batch_size=batch_size, max_grad_norm=max_grad_norm)  # None: the language model's default
        summary = _train_language_model(task_name, data_dir, out, resume is not None,
                                        {**{k: v for k, v in given.items() if v is not None}, "lr": lr,
                                         "max_epochs": max_epochs, "max_steps": max_steps, "seed": seed}, device)
        if int(os.environ.get("RANK", "0")) != 0:
            return  # under torchrun, one process reports
        if json_output:
            print(json.dumps(summary))
        else:
            state = "finished" if summary["finished"] else "stopped; continue with --resume"
            valid = f"; valid perplexity {summary['history'][-1]['valid_perplexity']:.1f}" if summary["history"] else ""
            stdout().print(f"{task_name}: {summary['epochs']} epochs, {summary['steps']} steps, {state}{valid}")
        print(f"saved {out}", file=sys.stderr)
        return

    from memn2n_cli.report import results_table
    from memn2n_cli.runs import qa_settings, qa_task, train_qa

    task_ids = qa_task(task_name).parse_task_ids(task or [])
    if joint and len(task_ids) < 2:
        raise UserError("--joint needs at least two tasks (e.g. --task all)")
    given = dict(dim=dim, hops=hops, memory_size=memory_size, init_std=init_std, batch_size=batch_size,
                 max_grad_norm=max_grad_norm, epochs=epochs, anneal_every=anneal_every)  # None: the default
    options, config = qa_settings(
        {**{k: v for k, v in given.items() if v is not None}, "encoding": encoding, "pe_formula": pe_formula,
         "temporal": temporal, "tying": tying, "relu": relu, "empty_memories": empty_memories, "lr": lr,
         "validation_fraction": validation_fraction, "linear_start": linear_start, "ls_lr": ls_lr,
         "ls_epochs": ls_epochs, "ls_patience": ls_patience, "random_noise": random_noise, "seed": seed}, joint)
    report, progress = _progress_reporter(config, len(task_ids))
    if progress:
        with progress:
            summary = train_qa(task_name, task_ids, joint, data_dir, out, options, config, device, report, resume is not None)
    else:
        summary = train_qa(task_name, task_ids, joint, data_dir, out, options, config, device, report, resume is not None)
    if json_output:
        print(json.dumps(summary))
    else:
        stdout().print(results_table(summary, ("train", "valid", "test")))
    print(f"saved {out}", file=sys.stderr)


def _train_language_model(task_name: str, data_dir: Path | None, out: Path, resume: bool, chosen: dict,
                          device: str) -> dict:
    """Train a language model with the options in ``chosen`` (by field name), the others LMConfig's
    and LMTrainConfig's defaults."""
    from memn2n_cli.lm_training import LMTrainConfig, train_lm
    from memn2n_cli.model import LMConfig
    from tasks.lm import resolve_data_dir

    model = {k: v for k, v in chosen.items() if k in LMConfig.__dataclass_fields__}
    dim = model.get("dim", LMConfig.dim)
    if model.get("linear_dim") is not None and model["linear_dim"] > dim:
        raise UserError(f"--linear-dim {model['linear_dim']} is more than --dim {dim}")
    config = LMTrainConfig(**{k: v for k, v in chosen.items() if k in LMTrainConfig.__dataclass_fields__})

    def report(record: dict) -> None:
        print(f"{task_name} epoch {record['epoch']} (lr {record['lr']:.5f}): train perplexity "
              f"{record['train_perplexity']:.1f}, valid {record['valid_perplexity']:.1f}; {record['train_seconds']:.0f} s of training",
              file=sys.stderr, flush=True)

    return train_lm(task_name, resolve_data_dir(task_name, data_dir), out, model, config, resume, report, device)
