"""A `memn2n serve` of a given checkout, started for a benchmark (serve_load.py, big_story.py)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def started(repo: Path):
    """`python -m memn2n_cli serve --port 0` importing memn2n from ``repo``, in an empty folder: its URL."""
    env = {k: v for k, v in os.environ.items() if k != "MEMN2N_DATA_DIR"} | {"PYTHONPATH": str(repo)}
    where = subprocess.run([sys.executable, "-c", "import memn2n_cli; print(memn2n_cli.__file__)"], env=env,
                           capture_output=True, text=True, cwd=tempfile.gettempdir())
    if where.returncode != 0 or not Path(where.stdout.strip()).resolve().is_relative_to(repo):
        sys.exit(f"--repo {repo}: memn2n_cli comes from {where.stdout.strip() or where.stderr.strip()}, not from there")
    with tempfile.TemporaryDirectory() as folder:
        log = Path(folder) / "stderr.txt"
        with log.open("w") as stderr:
            server = subprocess.Popen([sys.executable, "-m", "memn2n_cli", "serve", "--port", "0"], cwd=folder, env=env,
                                      stdout=subprocess.DEVNULL, stderr=stderr)
        try:
            deadline = time.monotonic() + 120
            while not (url := re.search(r"serving (http://\S+)", log.read_text())):
                if server.poll() is not None or time.monotonic() > deadline:
                    sys.exit(f"--repo {repo}: the server did not start:\n{log.read_text()}")
                time.sleep(0.1)
            yield url.group(1)
        finally:
            server.terminate()
            server.wait(30)
        if "Traceback" in log.read_text():
            print(f"<!-- the server of {repo} logged a traceback:\n{log.read_text()}-->", file=sys.stderr)
