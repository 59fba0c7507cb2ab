"""Shared test set-up: the real data in ../shared/data, a CLI runner with pinned terminal width."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

ROOT = Path(__file__).resolve().parents[1]
BABI = ROOT.parent / "shared" / "data" / "babi"
EN = BABI / "v1.2" / "en"


@pytest.fixture(scope="session")
def en_dir() -> Path:
    if not EN.is_dir():
        pytest.fail(f"the shared bAbI data is missing: {EN}")
    return EN


@pytest.fixture
def cli(monkeypatch):
    """Run `memn2n ARGS...` in-process; returns the click Result (stdout, stderr, exit_code)."""
    from memn2n_cli.cli import app

    monkeypatch.setenv("COLUMNS", "120")
    monkeypatch.setenv("TERM", "dumb")
    monkeypatch.delenv("MEMN2N_DATA_DIR", raising=False)
    runner = CliRunner()
    return lambda *args: runner.invoke(app, [str(a) for a in args])


def assert_one_line_error(result, *fragments: str) -> None:
    """Bad input: exit code 2, a single 'error:' line on stderr naming what is wrong, no traceback."""
    assert result.exit_code == 2, (result.exit_code, result.stdout, result.stderr, result.exception)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert "Traceback" not in result.stderr
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory, en_dir):
    """`memn2n train babi --task 1` for a few epochs on the real task 1: (run directory, summary)."""
    import json

    from memn2n_cli.cli import app

    out = tmp_path_factory.mktemp("runs") / "task1"
    result = CliRunner().invoke(app, ["train", "babi", "--task", "1", "--data-dir", str(en_dir), "--out", str(out),
                                      "--json", "--epochs", "15", "--ls-epochs", "5"])
    assert result.exit_code == 0, (result.stderr, result.exception)
    return out, json.loads(result.stdout)
