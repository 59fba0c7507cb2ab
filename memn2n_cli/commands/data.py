"""`memn2n data download NAME`: fetch a dataset into the cache and check it;
`memn2n data generate babi`: write the bAbI tasks with the built-in simulator, offline."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated

import typer

from memn2n_cli.cli import command, data_app
from memn2n_cli.errors import UserError


@data_app.command()
@command
def download(
    name: Annotated[str, typer.Argument(help="Dataset: babi or text8.")],
    dest: Annotated[Path | None, typer.Option(help="Where to unpack. [default: the cache, ~/.cache/memn2n/NAME]")] = None,
    url: Annotated[str | None, typer.Option(help="Archive to fetch. [default: the upstream one]")] = None,
) -> None:
    """Download a dataset, verify it against known SHA-256 sums and unpack it; prints its folder."""
    from memn2n_cli.download import download_archive, download_zipped_file
    from tasks import babi
    from tasks.lm import Text8, resolve_data_dir

    if name == "babi":
        target = download_archive(url or os.environ.get("MEMN2N_BABI_URL", babi.DOWNLOAD_URL),
                                  dest or babi.default_data_dir().parents[1], babi.CHECKSUMS) / "en"
    elif name == "text8":
        folder = dest or resolve_data_dir("text8", None, must_exist=False)
        target = download_zipped_file(url or Text8.DOWNLOAD_URL, "text8", folder, Text8.FILE_BYTES, Text8.FILE_SHA256).parent
    else:
        raise UserError(f"no download for {name!r}; available: babi, text8")
    print(f"verified and unpacked into {target}", file=sys.stderr)
    print(target)


@data_app.command()
@command
def generate(
    name: Annotated[str, typer.Argument(help="Dataset: babi.")],
    out: Annotated[Path, typer.Option(help="Folder to write qaN_<name>_{train,test}.txt into.")],
    task: Annotated[list[str] | None, typer.Option("--task", "-t", help="bAbI task number, repeatable, or 'all'. [default: all]")] = None,
    train: Annotated[int, typer.Option(min=1, help="Questions in each training file.")] = 1000,
    test: Annotated[int, typer.Option(min=1, help="Questions in each test file.")] = 1000,
    seed: Annotated[int, typer.Option(help="The same seed writes the same bytes.")] = 0,
) -> None:
    """Simulate the bAbI tasks and write them in the upstream format (no network needed); prints the folder."""
    from tasks.babi import parse_task_ids
    from tasks.babi_generator import write_task_files

    if name != "babi":
        raise UserError(f"no generator for {name!r}; available: babi")
    if out.exists() and not out.is_dir():
        raise UserError("exists and is not a folder", out)
    out.mkdir(parents=True, exist_ok=True)
    for task_id in parse_task_ids(task or ["all"]):
        write_task_files(task_id, out, train, test, seed)
    print(f"generated bAbI tasks (seed {seed}) into {out}", file=sys.stderr)
    print(out)
