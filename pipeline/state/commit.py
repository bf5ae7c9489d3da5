"""Commits off the event loop: finished documents and calls, a group per transaction.

The state's one way to open its database (``connect``: WAL, full synchronous commits) and the
thread that commits for a run (``GroupCommit``), each group in one transaction: one fsync
for whatever finished while the previous group was being synced.
"""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

from pipeline.core.errors import ConfigError
from pipeline.state.files import unusable

BUSY_TIMEOUT_MS = 60_000  # two connections write: one waits for the other's commit


def connect(path: Path, *, threaded: bool = False) -> sqlite3.Connection:
    db = sqlite3.connect(path, isolation_level=None, check_same_thread=not threaded)
    db.execute(f"pragma busy_timeout={BUSY_TIMEOUT_MS}")
    db.execute("pragma journal_mode=wal")
    db.execute("pragma synchronous=full")
    return db


Write = tuple[str, tuple[str, ...]]  # a statement and its values


class GroupCommit:
    """Finished documents and calls to the database, a group per transaction, in a thread
    with its own connection. ``add`` queues and returns; the thread commits everything
    queued, in order, as soon as its previous commit is done. A failed commit is raised (as
    the ``ConfigError`` that says what to fix) by the next ``add`` or ``flush``."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._db = connect(path, threaded=True)
        self._pending: list[Write] = []
        self._busy = False
        self._closing = False
        self._error: ConfigError | None = None
        self._changed = threading.Condition()
        self._thread = threading.Thread(target=self._loop, name="pipeline-state", daemon=True)
        self._thread.start()

    def add(self, *writes: Write) -> None:
        with self._changed:
            self._raise_error()
            self._pending.extend(writes)
            self._changed.notify_all()

    def flush(self) -> None:
        """Wait until everything added is committed."""
        with self._changed:
            while (self._pending or self._busy) and self._error is None:
                self._changed.wait()
            self._raise_error()

    def close(self) -> None:
        """Commit what is queued, then stop the thread."""
        with self._changed:
            self._closing = True
            self._changed.notify_all()
        self._thread.join()
        self._db.close()

    def _raise_error(self) -> None:
        if self._error is not None:
            raise self._error

    def _loop(self) -> None:
        while True:
            with self._changed:
                while not self._pending and not self._closing:
                    self._changed.wait()
                if not self._pending or self._error is not None:
                    return
                group, self._pending, self._busy = self._pending, [], True
            try:
                self._commit(group)
            finally:
                with self._changed:
                    self._busy = False
                    self._changed.notify_all()

    def _commit(self, group: list[Write]) -> None:
        try:
            self._db.execute("begin immediate")
            for statement, values in group:
                self._db.execute(statement, values)
            self._db.execute("commit")
        except Exception as exc:  # a full disk, a removed file: the run must stop and say so
            if self._db.in_transaction:
                self._db.execute("rollback")
            with self._changed:
                self._error = unusable(self._path, exc, opening=False)
