"""OpenMP's wait policy: passive unless the user set one, decided before torch loads OpenMP."""

from __future__ import annotations

import os
import subprocess
import sys

from tests.conftest import ROOT

SCRIPT = "import os, memn2n, torch; print(os.environ['OMP_WAIT_POLICY'])"


def wait_policy(**environment: str) -> str:
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"} | environment
    done = subprocess.run([sys.executable, "-c", SCRIPT], env=env, cwd=ROOT, capture_output=True, text=True, check=True)
    return done.stdout.strip()


def test_threads_that_wait_sleep_unless_the_user_chose():
    assert wait_policy() == "PASSIVE"
    assert wait_policy(OMP_WAIT_POLICY="ACTIVE") == "ACTIVE"
