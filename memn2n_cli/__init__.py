"""memn2n: End-To-End Memory Networks (Sukhbaatar et al., NIPS 2015) as a command-line tool and library."""

import os

__version__ = "0.1.0"

# OpenMP threads (torch's and the compiled kernels') that wait for work sleep instead of spinning,
# unless the user chose otherwise: on a machine shared with other work, spinning threads took the
# cores the others needed (the language model's training beside one busy core: 1.4x the wall time,
# BENCHMARKS "OpenMP's wait policy"); alone, the two measured the same. It must be set before torch
# loads OpenMP, so it takes effect when memn2n is imported first (the command line always does).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
