"""The state's files: opened safely (never through a link planted beside the output), and
read without the job's lock (``pipeline plan`` and the report's page look while a run goes)."""

from __future__ import annotations

import errno
import json
import os
import sqlite3
import stat
from pathlib import Path
from typing import Any
from urllib.parse import quote

from pipeline.core.errors import ConfigError

_SQLITE_HEADER = b"SQLite format 3\x00"
JOURNALS = ("-wal", "-shm", "-journal")


def unusable(path: Path, exc: Exception, *, opening: bool = True) -> ConfigError:
    if opening and isinstance(exc, sqlite3.DatabaseError):
        return ConfigError(
            f"output.path: the run's state at {path} is not a readable database ({exc}); "
            "move it aside (finished documents will then be sent again) or give another --output"
        )
    reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
    return ConfigError(
        f"output.path: cannot keep the run's state at {path} ({reason}); give an --output "
        "in a folder this user can write, on a disk with room"
    )


def _planted(path: Path) -> ConfigError:
    return ConfigError(
        f"output.path: {path} is a symbolic link, a hard link or not a regular file of this "
        "user, and the run would write through it (another file could be overwritten); "
        "remove it, or give another --output"
    )


def open_own(path: Path, flags: int) -> int:
    """Open (creating it 0600) one of the run's own files beside the output: never through
    a symbolic link, and never a file that is not a regular file of this user with one name
    (a hard link to another file would be written through)."""
    try:
        fd = os.open(path, flags | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise _planted(path) from None
        raise
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode) or info.st_nlink != 1 or info.st_uid != os.geteuid():
        os.close(fd)
        raise _planted(path)
    if stat.S_IMODE(info.st_mode) & 0o077:
        os.fchmod(fd, 0o600)  # made by an older version with the umask's mode: it holds answers
    return fd


def check_state(path: Path) -> None:
    """The state database and its journals: regular files of ours, or not there. A new
    database is created here, 0600 (SQLite gives its journals the database's mode)."""
    for end in JOURNALS:
        journal = path.with_name(path.name + end)
        try:
            info = journal.lstat()
        except FileNotFoundError:
            continue
        if not stat.S_ISREG(info.st_mode) or info.st_nlink != 1:
            raise _planted(journal)
    fd = open_own(path, os.O_RDONLY)
    try:
        head = os.pread(fd, len(_SQLITE_HEADER), 0)
    finally:
        os.close(fd)
    if head and head != _SQLITE_HEADER:
        raise ConfigError(
            f"output.path: the run's state at {path} is not a readable database (not SQLite); "
            "move it aside (finished documents will then be sent again) or give another --output"
        )


def _read_only(path: Path) -> sqlite3.Connection:
    """The state opened read-only. The path is quoted: in a ``file:`` URI a '#' or '?' would
    end the file's name (and a missing file would be made, empty, under the shorter name)."""
    return sqlite3.connect(f"file:{quote(str(path))}?mode=ro", uri=True)


def finished_keys(path: Path) -> set[str]:
    """The keys of the documents finished in the state at ``path``, read without taking the
    job's lock (``pipeline plan`` may look while a run is going); empty if there is none."""
    if not path.exists():
        return set()
    try:
        db = _read_only(path)
        try:
            return {key for (key,) in db.execute("select key from documents")}
        finally:
            db.close()
    except sqlite3.Error:
        return set()


def run_summaries(path: Path, last: int = 60) -> list[dict[str, Any]]:
    """The reports of the ``last`` runs kept in the state at ``path``, oldest first, read
    without taking the job's lock; empty if there is no state or it keeps none."""
    if not path.exists():
        return []
    try:
        db = _read_only(path)
        try:
            found = db.execute(
                "select summary from runs order by id desc limit ?", (last,)
            ).fetchall()
        finally:
            db.close()
    except sqlite3.Error:  # no such table: a state from before runs were kept
        return []
    return [json.loads(summary) for (summary,) in reversed(found)]
