"""`memn2n sweep TASK`: best-of-N restarts over a grid of configurations (the paper's Tables 1 and 2)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from memn2n_cli.commands.app import app, command
from memn2n_cli.commands.options import DataDir, Device, Json
from memn2n_cli.configs import JOINT, RESTARTS


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
@command
def sweep(
    ctx: typer.Context,
    task_name: Annotated[str, typer.Argument(metavar="TASK", help="A registered task (see `memn2n tasks`).")],
    out: Annotated[Path | None, typer.Option(help="Sweep directory; run the same command again to complete it. "
                                           "[default: sweeps/TASK, or sweeps/TASK-PRESET with --preset]")] = None,
    task: Annotated[list[str] | None, typer.Option("--task", "-t", help="bAbI task number, repeatable, or 'all'. [default: all]")] = None,
    grid: Annotated[list[str] | None, typer.Option(help="OPTION=V1,V2,... (repeatable): every combination is a configuration; "
                                                   "one value fixes an option, e.g. --grid epochs=50.")] = None,
    restarts: Annotated[int | None, typer.Option(min=1, help=f"Restarts per task and configuration. [default: {RESTARTS}; 1 with "
                                                 "--preset table2, whose best of 10 is ~200 hours on 2 cores]")] = None,
    joint: Annotated[bool, typer.Option(help=f"One model for all the tasks given (d={JOINT['dim']}, {JOINT['epochs']} epochs, halving every {JOINT['anneal_every']}).")] = False,
    preset: Annotated[str | None, typer.Option(help="table1 (bAbI): the paper's nine MemN2N columns of Table 1 (BoW, PE, PE LS, "
                                               "PE LS RN, 1/2/3 hops PE LS joint, PE LS RN joint, PE LS LW joint); table2 (ptb, "
                                               "text8): Table 2's MemN2N configurations ('2 hops' ... '7 hops' at memory 100, "
                                               "'memory 25' ... 'memory 150' at 6 hops, ptb's '7 hops, memory 200'); each laid "
                                               "out beside the paper's figures.")] = None,
    column: Annotated[list[str] | None, typer.Option(help="With --preset: one of its columns to train, by name "
                                                     "(repeatable), e.g. --column 'PE LS RN'; for table2, the configurations "
                                                     "to train now, the others kept as they are. [default: all]")] = None,
    select: Annotated[str | None, typer.Option(help="bAbI: keep the restart with the lowest train (the paper's rule; default) "
                                               "or valid error. Language models: by validation perplexity, always.")] = None,
    seed: Annotated[int, typer.Option(help="Restart r uses seed + r.")] = 0,
    backend: Annotated[str, typer.Option(help="local (a pool of processes) or ray (Ray tasks on the cluster ray.init finds).")] = "local",
    workers: Annotated[int, typer.Option(min=0, help="Processes of the local backend; 0 = one per CPU core.")] = 0,
    data_dir: DataDir = None,
    json_output: Json = False,
    device: Device = "auto",
) -> None:
    """Train every configuration x task x restart and print a Table 1-style matrix of the selected
    restarts; for a language model (ptb, text8), Table 2's rows: `memn2n sweep ptb --grid hops=2,3,4,5,6,7`.

    Any model or training option of `memn2n train` (--epochs 20, --no-linear-start, --encoding bow, ...)
    fixes that option for every configuration, as a one-value --grid does."""
    from memn2n_cli.commands import kinds

    out = out or Path("sweeps") / (f"{task_name}-{preset}" if preset else task_name)
    kinds.for_task(task_name).sweep(task_name, out=out, tasks=task or [], grid=grid or [], args=ctx.args,
                                      restarts=restarts, joint=joint, preset=preset, column=column or [],
                                      select=select, seed=seed, backend=backend,
                                      workers=workers or os.cpu_count() or 1, data_dir=data_dir,
                                      json_output=json_output, device=device)
