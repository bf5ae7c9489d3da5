"""Where a job's files are: a path or a URL, the local twin of an output URL (the state and
lock stay on this machine), and the files a run writes beside its output.

Output to object storage (``output.path = "s3://..."``): the results are written locally first,
under ``local_copy(url)``, then uploaded (``pipeline.readers.remote``).
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Sequence
from pathlib import Path

_URL = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*://")
STATE_DIR_ENV = "PIPELINE_STATE_DIR"
GLOB_CHARS = frozenset("*?[")


def is_url(text: str) -> bool:
    """``s3://bucket/key`` and the like (``file://`` included); not a local path."""
    return bool(_URL.match(text))


def state_dir() -> Path:
    """Where results for a URL output are kept on this machine: ``$PIPELINE_STATE_DIR``,
    else ``$XDG_STATE_HOME/pipeline``, else ``~/.local/state/pipeline``."""
    if given := os.environ.get(STATE_DIR_ENV):
        return Path(given).expanduser()
    base = os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state"
    return Path(base) / "pipeline"


def local_copy(url: str) -> Path:
    """The local twin of an output URL: ``STATE_DIR/remote/<hash of the URL>/NAME``. The
    state database and lock sit beside it, so a second run to the same URL waits its turn."""
    name = url.rstrip("/").rsplit("/", 1)[-1] or "results.parquet"
    digest = hashlib.sha256(url.encode()).hexdigest()[:16]
    return state_dir() / "remote" / digest / name


def report_path(output: Path) -> Path:
    return output.with_name(f"{output.stem}.report.json")


def page_path(output: Path) -> Path:
    """The HTML page of the report (``pipeline.output.page``), beside the JSON."""
    return output.with_name(f"{output.stem}.report.html")


def literal_pattern(text: str) -> str:
    """``text`` (a path below a root, or part of one) as a pattern that matches it exactly:
    its special characters escaped, trailing spaces kept. Prefix ``/`` to anchor it."""
    escaped = "".join(f"\\{c}" if c in "\\[]!*#?" else c for c in text)
    stripped = escaped.rstrip(" ")
    return stripped + "\\ " * (len(escaped) - len(stripped))  # git strips bare ones


def split_glob(parts: Sequence[str]) -> tuple[int, tuple[str, ...]] | None:
    """Where a path's glob starts: (index of the first part with * ? or [, the parts from
    there); None if the path is not a glob."""
    for index, part in enumerate(parts):
        if GLOB_CHARS.intersection(part):
            return index, tuple(parts[index:])
    return None


def glob_start(given: Path) -> tuple[Path, tuple[str, ...]] | None:
    """For an input path that is a glob: the folder it starts from and its pattern parts.
    None for a path that exists (a name with [ or * that exists is taken as it is) or has
    no glob characters."""
    if os.path.lexists(given):
        return None
    where = split_glob(given.parts)
    if where is None:
        return None
    index, parts = where
    return (Path(*given.parts[:index]) if index else Path()), parts
