"""Fetch a dataset archive, unpack it safely, check every file against known SHA-256 sums."""

from __future__ import annotations

import hashlib
import shutil
import tarfile
import tempfile
import urllib.error
import urllib.request
from pathlib import Path

from memn2n_cli.errors import UserError


def read_checksums(path: Path) -> dict[str, str]:
    """``sha256sum`` format: '<hex>  <path relative to the archive root>' per line."""
    return {name: digest for digest, name in (line.split(maxsplit=1) for line in path.read_text().splitlines() if line)}


def download_archive(url: str, dest: Path, checksums: Path) -> Path:
    """Unpack the .tar.gz at ``url`` into ``dest``; its top folder must hold every file of ``checksums``."""
    expected = read_checksums(checksums)
    dest.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=dest, prefix=".download-") as tmp:
        archive = Path(tmp) / "archive.tar.gz"
        try:
            with urllib.request.urlopen(url, timeout=60) as response, archive.open("wb") as f:
                shutil.copyfileobj(response, f)
        except (urllib.error.URLError, OSError, ValueError) as e:
            reason = getattr(e, "reason", e)
            raise UserError(f"download failed ({reason}); pass --data-dir DIR with the unpacked files instead", url) from None
        try:
            with tarfile.open(archive) as tar:
                tar.extractall(Path(tmp) / "unpacked", filter="data")
        except (tarfile.TarError, EOFError, OSError) as e:
            raise UserError(f"not a readable .tar.gz archive: {e}", url) from None
        roots = [p for p in (Path(tmp) / "unpacked").iterdir() if p.is_dir()]
        if len(roots) != 1:
            raise UserError("expected one top-level folder in the archive", url)
        for name, digest in expected.items():
            path = roots[0] / name
            if not path.is_file():
                raise UserError(f"archive lacks {name}", url)
            if hashlib.sha256(path.read_bytes()).hexdigest() != digest:
                raise UserError(f"checksum mismatch for {name}: the download is corrupt or not the expected version", url)
        target = dest / roots[0].name
        if target.exists():
            shutil.rmtree(target)
        roots[0].rename(target)
    return target
