"""Durable progress: every finished document is committed to SQLite as it completes.

The store sits beside the output (``OUTPUT.state.sqlite``), in WAL mode with full
synchronous commits, so a crash, a ``kill -9`` or a power cut loses at most the calls in
flight. Commits are grouped, not delayed: a thread of its own commits whatever finished
while its previous commit was being synced, all in one transaction, at once (one fsync for
many documents, and none on the event loop); a document's answer waits for the disk at most
one commit. A document is keyed by its ``doc_id`` (source path + content hash) and a hash of
everything that shapes its answer (model, parameters, prompts, chunking, schema); a re-run
finds its finished rows here and sends nothing for them. Only documents whose rows are all
``ok`` count as finished: errors are tried again on the next run.
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import json
import os
import sqlite3
import stat
import threading
from collections.abc import Iterator, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

from pipeline.core.errors import ConfigError, RunBusy
from pipeline.core.rows import CallRow, DocumentRow

_SCHEMA = """
create table if not exists documents (
    key text primary key,
    rows text not null,
    calls text not null
);
create table if not exists objects (
    url text primary key,
    etag text not null,
    size integer not null,
    doc_id text not null
);
create table if not exists batch_items (
    base text primary key,
    custom_id text not null,
    batch_id text,
    attempt integer not null
);
create table if not exists runs (
    id integer primary key autoincrement,
    started_at text not null,
    summary text not null
)
"""
# This run's output, gathered on disk (not in memory) until the Parquet is written: the
# finished documents it keeps (``seen``) and the rows of the others (``other_rows``).
# Temporary tables: never synced, gone when the run closes the store.
_RUN_SCHEMA = (
    "create temp table seen (key text primary key, source text not null)",
    "create temp table other_rows (source text not null, rows text not null, calls text not null)",
)
_SQLITE_HEADER = b"SQLite format 3\x00"
JOURNALS = ("-wal", "-shm", "-journal")


def _unusable(path: Path, exc: Exception, *, opening: bool = True) -> ConfigError:
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


def _check_state(path: Path) -> None:
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


def settings_hash(settings: dict[str, Any]) -> str:
    """A short, stable hash of the settings that shape an answer."""
    encoded = json.dumps(settings, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(encoded.encode()).hexdigest()[:16]


def document_key(doc_id: str, settings: str) -> str:
    """What a finished document is stored under: its content (``doc_id``) and the hash of
    the settings that shape its answer."""
    return f"{doc_id}:{settings}"


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


def _encode(rows: Sequence[DocumentRow | CallRow]) -> str:
    return json.dumps(
        [row.record() for row in rows],
        default=lambda v: v.isoformat() if isinstance(v, datetime) else str(v),
    )


_BUSY_TIMEOUT_MS = 60_000  # two connections write: one waits for the other's commit


def _connect(path: Path, *, threaded: bool = False) -> sqlite3.Connection:
    db = sqlite3.connect(path, isolation_level=None, check_same_thread=not threaded)
    db.execute(f"pragma busy_timeout={_BUSY_TIMEOUT_MS}")
    db.execute("pragma journal_mode=wal")
    db.execute("pragma synchronous=full")
    return db


class _GroupCommit:
    """Finished documents to the ``documents`` table, a group per transaction, in a thread
    with its own connection. ``add`` queues and returns; the thread commits everything
    queued as soon as its previous commit is done. A failed commit is raised (as the
    ``ConfigError`` that says what to fix) by the next ``add`` or ``flush``."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._db = _connect(path, threaded=True)
        self._pending: list[tuple[str, str, str]] = []
        self._busy = False
        self._closing = False
        self._error: ConfigError | None = None
        self._changed = threading.Condition()
        self._thread = threading.Thread(target=self._loop, name="pipeline-state", daemon=True)
        self._thread.start()

    def add(self, item: tuple[str, str, str]) -> None:
        with self._changed:
            self._raise_error()
            self._pending.append(item)
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

    def _commit(self, group: list[tuple[str, str, str]]) -> None:
        try:
            self._db.execute("begin immediate")
            self._db.executemany(
                "insert or replace into documents (key, rows, calls) values (?, ?, ?)", group
            )
            self._db.execute("commit")
        except Exception as exc:  # a full disk, a removed file: the run must stop and say so
            if self._db.in_transaction:
                self._db.execute("rollback")
            with self._changed:
                self._error = _unusable(self._path, exc, opening=False)


class ResultStore:
    """Opened by one run at a time: a second run of the same job (same output) is refused
    while the first holds the lock. The lock is the kernel's (``flock``), so it goes with
    its process: a run killed with ``kill -9`` leaves nothing stale to take over."""

    def __init__(self, path: Path, *, output: Path | str | None = None) -> None:
        """``output``: the file the run writes, named when another run holds the lock."""
        self.path = path
        lock = path.with_suffix(".lock")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._lock = open_own(lock, os.O_RDWR)
        except OSError as exc:
            raise _unusable(path, exc) from None
        held = os.pread(self._lock, 64, 0).strip()
        if held and not held.isdigit():
            os.close(self._lock)
            raise ConfigError(
                f"output.path: {lock} holds something other than a run's pid, so it is not "
                "this program's lock; move it aside, or give another --output"
            )
        try:
            fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(self._lock, 64, 0).decode(errors="replace").strip()
            os.close(self._lock)
            raise RunBusy(
                f"another run of this job is writing {output or path} (pid {holder or '?'}); "
                "wait for it to finish (--wait), or give this run another --output"
            ) from None
        try:
            _check_state(path)
            os.ftruncate(self._lock, 0)
            os.pwrite(self._lock, str(os.getpid()).encode(), 0)
            self._db = _connect(path)
            self._db.executescript(_SCHEMA)
            for statement in _RUN_SCHEMA:
                self._db.execute(statement)
            self._saved = _GroupCommit(path)
        except (OSError, sqlite3.Error, ConfigError) as exc:
            os.close(self._lock)
            if isinstance(exc, ConfigError):
                raise
            raise _unusable(path, exc) from None

    def reuse(self, key: str, source: str) -> bool:
        """If ``key`` was finished by an earlier run, keep it in this run's output."""
        found = self._db.execute("select 1 from documents where key = ?", (key,)).fetchone()
        if found is not None:
            self._db.execute("insert or replace into seen values (?, ?)", (key, source))
        return found is not None

    def save(
        self, key: str, source: str, rows: Sequence[DocumentRow], calls: Sequence[CallRow]
    ) -> None:
        """Commit one finished document, durably, with the next group (see the module's
        docstring): it returns at once."""
        self._saved.add((key, _encode(rows), _encode(calls)))
        self._db.execute("insert or replace into seen values (?, ?)", (key, source))

    def add_other(self, source: str, rows: Sequence[DocumentRow], calls: Sequence[CallRow]) -> None:
        """Rows of this run that are not finished work (errors, skips): output only."""
        self._db.execute(
            "insert into other_rows values (?, ?, ?)", (source, _encode(rows), _encode(calls))
        )

    def output_rows(self) -> Iterator[DocumentRow]:
        """This run's output rows, by source, one at a time."""
        for source, record in self._output("rows"):
            record["source"] = source  # a table row reused from a table since renamed or moved
            yield DocumentRow.from_record(record)

    def output_calls(self) -> Iterator[CallRow]:
        """The calls of this run's output rows, by source, one at a time."""
        for _, record in self._output("calls"):
            yield CallRow.from_record(record)

    def _output(self, column: str) -> Iterator[tuple[str, dict[str, Any]]]:
        self._saved.flush()
        query = (
            f"select s.source, d.{column} from seen s join documents d on d.key = s.key "
            f"union all select source, {column} from other_rows order by 1"
        )
        for source, encoded in self._db.execute(query):
            for record in json.loads(encoded):
                yield source, record

    # ---- Objects in storage: which document an unchanged object was, without downloading it ----

    def object_doc(self, url: str, etag: str, size: int) -> str | None:
        """The ``doc_id`` the object at ``url`` had when it last had this ETag and size."""
        found = self._db.execute(
            "select doc_id from objects where url = ? and etag = ? and size = ?",
            (url, etag, size),
        ).fetchone()
        return None if found is None else str(found[0])

    def remember_object(self, url: str, etag: str, size: int, doc_id: str) -> None:
        self._db.execute(
            "insert or replace into objects values (?, ?, ?, ?)", (url, etag, size, doc_id)
        )

    # ---- Message Batches: which request went in which batch, so a re-run polls, not pays ----

    def batch_item(self, base: str) -> tuple[str, str | None, int] | None:
        """The latest ``(custom_id, batch_id, attempt)`` sent for the request ``base``;
        ``batch_id`` is None if the run stopped while submitting it."""
        found = self._db.execute(
            "select custom_id, batch_id, attempt from batch_items where base = ?", (base,)
        ).fetchone()
        return None if found is None else (found[0], found[1], found[2])

    def batch_submitting(self, items: list[tuple[str, str, int]]) -> None:
        """Record ``(base, custom_id, attempt)`` before the batch is created."""
        self._db.execute("begin")
        self._db.executemany("insert or replace into batch_items values (?, ?, null, ?)", items)
        self._db.execute("commit")

    def batch_submitted(self, custom_ids: list[str], batch_id: str) -> None:
        self._db.execute("begin")
        self._db.executemany(
            "update batch_items set batch_id = ? where custom_id = ?",
            [(batch_id, custom_id) for custom_id in custom_ids],
        )
        self._db.execute("commit")

    def batch_forget(self, base: str) -> None:
        """A request that ended in an error: the next run sends it afresh."""
        self._db.execute("delete from batch_items where base = ?", (base,))

    # ---- each run's report, kept for the trend across runs (``pipeline.output.page``) ----

    def record_run(self, summary: dict[str, Any]) -> None:
        """Keep this run's report, after those of the runs before it."""
        self._db.execute(
            "insert into runs (started_at, summary) values (?, ?)",
            (summary["started_at"], json.dumps(summary, ensure_ascii=False)),
        )

    def forget_all(self) -> None:
        self._db.execute("delete from documents")
        self._db.execute("delete from batch_items")

    def close(self) -> None:
        """Commit what is queued, and let the job's lock go."""
        try:
            self._saved.close()
        finally:
            self._db.close()
            os.close(self._lock)  # releases the lock
