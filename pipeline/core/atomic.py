"""Files replaced whole: a reader sees the old content or the new, never half a file.

The new content is written beside the file under a unique name (``.NAME.XXXXXXXX.partial``,
made by ``mkstemp``: created new, never through a link, readable by its user only), flushed
to disk and renamed over it. A name that already exists there, a link planted by someone
else included, is never opened. A run killed while writing leaves its partial file; the next
write of the same file removes such leftovers (regular files of this user only), and the
``.NAME.partial`` an older version used.
"""

from __future__ import annotations

import os
import stat
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def partial_affixes(path: Path) -> tuple[str, str]:
    """``(prefix, suffix)`` of the names ``path`` is written under before it is renamed."""
    return f".{path.name}.", ".partial"


def leftover_partials(path: Path) -> list[Path]:
    """Partial files of ``path`` that a killed writer left: regular files of this user."""
    prefix, _ = partial_affixes(path)
    found = []
    try:
        names = os.listdir(path.parent)
    except OSError:
        return []
    for name in names:
        if name.startswith(prefix) and name[len(prefix) :].endswith("partial"):
            candidate = path.parent / name
            try:
                info = candidate.lstat()
            except OSError:
                continue
            if stat.S_ISREG(info.st_mode) and info.st_uid == os.geteuid():
                found.append(candidate)
    return found


@contextmanager
def replacing(path: Path) -> Iterator[Path]:
    """Yield the path to write ``path``'s new content to; when the block ends without an
    error, make it durable and rename it over ``path``. On an error it is removed."""
    path.parent.mkdir(parents=True, exist_ok=True)
    for leftover in leftover_partials(path):
        leftover.unlink(missing_ok=True)
    prefix, suffix = partial_affixes(path)
    fd, name = tempfile.mkstemp(prefix=prefix, suffix=suffix, dir=path.parent)
    os.close(fd)
    partial = Path(name)
    try:
        yield partial
        with open(partial, "rb") as written:
            os.fsync(written.fileno())
        os.replace(partial, path)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
