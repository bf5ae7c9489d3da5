"""Code mode's default excludes: what a repository holds that nobody wrote and a review should
not read (caches, vendored packages, virtualenvs, build output, lock files, minified assets).

With ``inputs.code`` a walk leaves these out without a row each, and says in one INFO line
how many it left out. A job that wants one of them names it in ``inputs.include`` (a pattern
with the name as one of its parts: ``build/**``, ``*.min.js``, ``poetry.lock``), which lifts
that rule; an input path given below such a folder is read as usual (the rules apply to what a
walk finds under its root, never to the root itself).

Folders: ``__pycache__``, ``node_modules``, ``.venv`` and any folder holding ``pyvenv.cfg``
(a virtualenv, whatever its name), tool caches (``.tox``, ``.nox``, ``.mypy_cache``,
``.pytest_cache``, ``.ruff_cache``), build output (``build``, ``dist``, ``target``,
``*.egg-info``, ``.eggs``). A ``build``/``dist``/``target``/``venv`` folder holding
``__init__.py`` is a Python package of that name, so it is source and is read. (``.git`` and
other version-control folders are skipped in every mode: ``discover.SKIPPED_DIRS``.)

Files: lock files (``package-lock.json``, ``yarn.lock``, ``poetry.lock``, ``uv.lock``,
``Cargo.lock``, ...), minified assets (``*.min.js``, ``*.min.css``, their source maps),
compiled Python (``*.pyc``, ``*.pyo``).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from fnmatch import fnmatchcase

# Left out by name wherever they are.
FOLDERS = frozenset(
    (
        *("__pycache__", "node_modules", ".venv", ".eggs", "__pypackages__"),
        *(".tox", ".nox", ".mypy_cache", ".pytest_cache", ".ruff_cache"),
    )
)
# Left out by name, unless the folder is a Python package of that name (holds __init__.py).
OUTPUT_FOLDERS = frozenset(("build", "dist", "target", "venv"))
FOLDER_PATTERNS = ("*.egg-info",)
VENV_MARKER = "pyvenv.cfg"
LOCK_FILES = frozenset(
    (
        *("package-lock.json", "npm-shrinkwrap.json", "yarn.lock", "pnpm-lock.yaml", "bun.lockb"),
        *("poetry.lock", "Pipfile.lock", "pdm.lock", "uv.lock", "Cargo.lock", "Gemfile.lock"),
        *("composer.lock", "go.sum", "mix.lock", "flake.lock", "Podfile.lock", "pubspec.lock"),
        "packages.lock.json",
    )
)
FILE_PATTERNS = ("*.min.js", "*.min.css", "*.min.js.map", "*.min.css.map", "*.pyc", "*.pyo")


def _names_in(include: Sequence[str]) -> frozenset[str]:
    """Every part of every include pattern (``!build/**`` -> build, **): a rule whose name or
    pattern is one of them is lifted."""
    parts: set[str] = set()
    for pattern in include:
        parts.update(part for part in pattern.lstrip("!").split("/") if part)
    return frozenset(parts)


@dataclass
class Generated:
    """The default excludes of one discovery, and what they left out so far."""

    include: Sequence[str] = ()
    folders: int = 0
    files: int = 0
    _lifted: frozenset[str] = field(init=False)

    def __post_init__(self) -> None:
        self._lifted = _names_in(self.include)

    def _rule(self, name: str, names: frozenset[str], patterns: Sequence[str]) -> str | None:
        """The rule that matches ``name`` and is not lifted, or None."""
        if name in names:
            return None if name in self._lifted else name
        for pattern in patterns:
            if fnmatchcase(name, pattern):
                return None if pattern in self._lifted or name in self._lifted else pattern
        return None

    def leaves_folder(self, name: str, path: str) -> bool:
        """Is the folder ``name`` at ``path`` left out? Counted when it is."""
        out = self._rule(name, FOLDERS, FOLDER_PATTERNS) is not None
        if not out and name in OUTPUT_FOLDERS and name not in self._lifted:
            out = not os.path.isfile(os.path.join(path, "__init__.py"))
        if not out and VENV_MARKER not in self._lifted:
            out = os.path.isfile(os.path.join(path, VENV_MARKER))
        self.folders += out
        return out

    def leaves_file(self, name: str) -> bool:
        """Is the file ``name`` left out? Counted when it is."""
        out = self._rule(name, LOCK_FILES, FILE_PATTERNS) is not None
        self.files += out
        return out

    def summary(self) -> str | None:
        """The one line to log, or None if nothing was left out."""
        if not self.folders and not self.files:
            return None
        counts = []
        if self.folders:
            counts.append(f"{self.folders:,} folder{'s' if self.folders != 1 else ''}")
        if self.files:
            counts.append(f"{self.files:,} file{'s' if self.files != 1 else ''}")
        return (
            f"inputs: left out {' and '.join(counts)} that code mode does not review (caches, "
            "virtualenvs, vendored packages, build output, lock files, minified and compiled "
            "files); to read one, name it in inputs.include (e.g. build/**)"
        )
