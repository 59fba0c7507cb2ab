"""pyproject.toml's packaging configuration against the tree: every folder is a package, and every
file besides Python is declared package data (a glob in ``[tool.setuptools.package-data]``).

A wheel holds its packages' Python files and, of their other files, only those a glob matches: an
undeclared one (a kernel's C source, a file of the bundled model, of `serve`'s page) goes missing
from an installed memn2n only, never from this checkout. `.ci/wheel` builds and installs the wheel to
show that; this says it sooner.
"""

from __future__ import annotations

import tomllib
from fnmatch import fnmatchcase
from pathlib import Path

from tests.conftest import ROOT

SETUPTOOLS = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
FIND = SETUPTOOLS["packages"]["find"]  # how setuptools finds the packages: by their dotted names
PACKAGE_DATA: dict[str, list[str]] = SETUPTOOLS["package-data"]


def tree_files() -> set[Path]:
    """Every file under the top-level packages' folders, Python's caches aside, relative to the checkout."""
    tops = [ROOT / name for name in FIND["include"] if "*" not in name]
    return {path.relative_to(ROOT) for top in tops for path in top.rglob("*")
            if path.is_file() and "__pycache__" not in path.parts}


def matched(package: str, pattern: str) -> set[Path]:
    """The files a package-data glob declares (it is relative to its package's folder)."""
    return {path.relative_to(ROOT) for path in (ROOT / package.replace(".", "/")).glob(pattern) if path.is_file()}


def test_every_folder_is_a_package():
    """setuptools warns about a folder of files that is not a package ("absent from the packages
    configuration") and leaves its files out; the data-only folders are namespace packages."""
    def found(name: str) -> bool:
        return (any(fnmatchcase(name, pattern) for pattern in FIND["include"])
                and not any(fnmatchcase(name, pattern) for pattern in FIND.get("exclude", [])))
    folders = {".".join(path.parent.parts) for path in tree_files()}
    assert sorted(name for name in folders if not found(name)) == []


def test_every_data_file_is_declared():
    declared = set().union(*(matched(package, pattern) for package, patterns in PACKAGE_DATA.items()
                             for pattern in patterns))
    undeclared = sorted(str(path) for path in tree_files() - declared if path.suffix != ".py")
    assert undeclared == [], "not in the wheel: add a glob to [tool.setuptools.package-data] in pyproject.toml"


def test_every_glob_declares_a_file():
    """A glob that matches nothing is a file moved or renamed without its declaration."""
    assert [(package, pattern) for package, patterns in PACKAGE_DATA.items() for pattern in patterns
            if not matched(package, pattern)] == []
