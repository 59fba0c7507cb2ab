"""memn2n: End-To-End Memory Networks (Sukhbaatar et al., NIPS 2015) as a command-line tool and library."""

__version__ = "0.1.0"
