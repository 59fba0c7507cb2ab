"""`memn2n data download NAME`: fetch a dataset into the cache and check it."""

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
    name: Annotated[str, typer.Argument(help="Dataset: babi.")],
    dest: Annotated[Path | None, typer.Option(help="Where to unpack. [default: the cache, ~/.cache/memn2n/babi]")] = None,
    url: Annotated[str | None, typer.Option(help="Archive to fetch. [default: the upstream v1.2 archive]")] = None,
) -> None:
    """Download the bAbI v1.2 archive, verify every file's SHA-256 and unpack it."""
    from memn2n_cli.download import download_archive
    from tasks import babi

    if name != "babi":
        raise UserError(f"no download for {name!r}; available: babi")
    target = download_archive(url or os.environ.get("MEMN2N_BABI_URL", babi.DOWNLOAD_URL),
                              dest or babi.default_data_dir().parents[1], babi.CHECKSUMS)
    print(f"verified and unpacked into {target}", file=sys.stderr)
    print(target / "en")
