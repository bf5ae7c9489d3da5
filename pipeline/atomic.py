"""Files replaced whole: a reader sees the old content or the new, never half a file.

The new content is written beside the file under a fixed name (``.NAME.partial``), flushed
to disk and renamed over it. One run of a job writes at a time (the job's lock), so the
fixed name is safe; a run killed while writing leaves its partial file, which the next
write overwrites and renames away, so nothing accumulates.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def partial_path(path: Path) -> Path:
    """Where ``path`` is written before it is renamed into place."""
    return path.with_name(f".{path.name}.partial")


@contextmanager
def replacing(path: Path) -> Iterator[Path]:
    """Yield the path to write ``path``'s new content to; when the block ends without an
    error, make it durable and rename it over ``path``. On an error it is removed."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = partial_path(path)
    try:
        yield partial
        with open(partial, "rb") as written:
            os.fsync(written.fileno())
        os.replace(partial, path)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
