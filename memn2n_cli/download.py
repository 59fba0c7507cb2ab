"""Fetch a dataset (an archive, or files one by one), unpack it safely, check every file against
known SHA-256 sums."""

from __future__ import annotations

import hashlib
import shutil
import tarfile
import tempfile
import urllib.error
import urllib.request
import zipfile
from pathlib import Path

from memn2n_cli.errors import UserError


def read_checksums(path: Path) -> dict[str, str]:
    """``sha256sum`` format: '<hex>  <path relative to the archive root>' per line."""
    return {name: digest for digest, name in (line.split(maxsplit=1) for line in path.read_text().splitlines() if line)}


class DownloadFailed(UserError):
    """The network, or the address, failed us (offline, say): not the data."""


def fetch(url: str, path: Path) -> Path:
    """Download ``url`` to ``path``; DownloadFailed when it cannot."""
    try:
        with urllib.request.urlopen(url, timeout=60) as response, path.open("wb") as f:
            shutil.copyfileobj(response, f)
    except (urllib.error.URLError, OSError, ValueError) as e:
        reason = getattr(e, "reason", e)
        raise DownloadFailed(f"download failed ({reason})", url) from None
    return path


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def download_zipped_file(url: str, member: str, dest: Path, size: int, sha256: str) -> Path:
    """Fetch the .zip at ``url`` and write its file ``member`` to ``dest/member`` once its size and
    SHA-256 are checked (written under a temporary name, then renamed)."""
    dest.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=dest, prefix=".download-") as tmp:
        archive = fetch(url, Path(tmp) / "archive.zip")
        try:
            with zipfile.ZipFile(archive) as zipped:
                zipped.extract(member, tmp)
        except (zipfile.BadZipFile, KeyError, OSError) as e:
            raise UserError(f"not a zip archive holding {member!r}: {e}", url) from None
        unpacked = Path(tmp) / member
        if unpacked.stat().st_size != size or sha256_file(unpacked) != sha256:
            raise UserError(f"{member} is not the expected file ({size:,} bytes, SHA-256 {sha256[:12]}...)", url)
        unpacked.replace(dest / member)
    return dest / member


def download_files(base_url: str, dest: Path, checksums: Path) -> Path:
    """Fetch each file of ``checksums`` from ``base_url``/NAME and, once every one matches its
    SHA-256, move them all into ``dest`` (fetched under a temporary folder there: a failed
    download leaves ``dest`` as it was)."""
    expected = read_checksums(checksums)
    dest.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=dest, prefix=".download-") as tmp:
        for name, digest in expected.items():
            url = f"{base_url.rstrip('/')}/{name}"
            if sha256_file(fetch(url, Path(tmp) / name)) != digest:
                raise UserError(f"checksum mismatch for {name}: the download is corrupt or not the expected version", url)
        for name in expected:
            (Path(tmp) / name).replace(dest / name)
    return dest


def download_archive(url: str, dest: Path, checksums: Path) -> Path:
    """Unpack the .tar.gz at ``url`` into ``dest``; its top folder must hold every file of ``checksums``."""
    expected = read_checksums(checksums)
    dest.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=dest, prefix=".download-") as tmp:
        archive = fetch(url, Path(tmp) / "archive.tar.gz")
        try:
            with tarfile.open(archive, "r:gz") as tar:  # one format: one reason when it is not one
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
            if sha256_file(path) != digest:
                raise UserError(f"checksum mismatch for {name}: the download is corrupt or not the expected version", url)
        target = dest / roots[0].name
        if target.exists():
            shutil.rmtree(target)
        roots[0].rename(target)
    return target
