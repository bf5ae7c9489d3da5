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

import fcntl
import hashlib
import json
import os
import sqlite3
from collections.abc import Iterator, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import anyio

from pipeline.core.errors import ConfigError, RunBusy
from pipeline.core.rows import CallRow, DocumentRow
from pipeline.state.commit import GroupCommit, connect
from pipeline.state.files import (
    check_state,
    finished_keys,
    open_own,
    run_summaries,
    unusable,
)

__all__ = ["ResultStore", "document_key", "finished_keys", "open_own", "run_summaries"]

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
create table if not exists calls (
    doc text not null,
    request text not null,
    reply text not null,
    attempts text not null,
    primary key (doc, request)
);
create table if not exists written (
    path text primary key,
    stat text not null,
    digest text not null,
    counts text not null
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


def settings_hash(settings: dict[str, Any]) -> str:
    """A short, stable hash of the settings that shape an answer."""
    encoded = json.dumps(settings, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(encoded.encode()).hexdigest()[:16]


def document_key(doc_id: str, settings: str) -> str:
    """What a finished document is stored under: its content (``doc_id``) and the hash of
    the settings that shape its answer."""
    return f"{doc_id}:{settings}"


def _encode(rows: Sequence[DocumentRow | CallRow]) -> str:
    return json.dumps(
        [row.record() for row in rows],
        default=lambda v: v.isoformat() if isinstance(v, datetime) else str(v),
    )


_SAVE_DOCUMENT = "insert or replace into documents (key, rows, calls) values (?, ?, ?)"
_LOOKUP_BATCH = 400  # documents a statement (two values each: under SQLite's 999)


def _stat(path: Path) -> str:
    try:
        info = os.stat(path)
    except OSError:
        return ""
    return f"{info.st_dev}:{info.st_ino}:{info.st_size}:{info.st_mtime_ns}"


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
            raise unusable(path, exc) from None
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
            check_state(path)
            os.ftruncate(self._lock, 0)
            os.pwrite(self._lock, str(os.getpid()).encode(), 0)
            # threaded: the Parquet sink reads the output rows from polars' thread while
            # the run waits for it (``pipeline.output.sink``); one thread at a time uses it.
            self._db = connect(path, threaded=True)
            self._db.executescript(_SCHEMA)
            for statement in _RUN_SCHEMA:
                self._db.execute(statement)
            self._saved = GroupCommit(path)
            self._seen: list[tuple[str, str]] = []  # for the ``seen`` table (``_keep``)
            # Documents finished by an earlier run? If none, a run looks none up (``reuse``)
            self.finished_any = self._any("documents")
            # Calls kept by an earlier run? If none, a run asks nothing of the table: the
            # calls this run keeps are for the next one.
            self._earlier_calls = self._any("calls")
        except (OSError, sqlite3.Error, ConfigError) as exc:
            os.close(self._lock)
            if isinstance(exc, ConfigError):
                raise
            raise unusable(path, exc) from None

    def _any(self, table: str) -> bool:
        return bool(self._db.execute(f"select exists (select 1 from {table})").fetchone()[0])

    def reuse(self, key: str, source: str) -> bool:
        """If ``key`` was finished by an earlier run, keep it in this run's output."""
        return bool(self.reuse_many([(key, source)]))

    def reuse_many(self, documents: Sequence[tuple[str, str]]) -> set[str]:
        """Of ``documents`` (key, source), the keys an earlier run finished: kept in this
        run's output. One query a batch, its answer in one row: on the event loop each
        SQLite step lets the reading threads take the GIL, so a re-run looks up a batch of
        documents at a time, not one each."""
        found: set[str] = set()
        for start in range(0, len(documents), _LOOKUP_BATCH):
            keys = [key for key, _ in documents[start : start + _LOOKUP_BATCH]]
            (encoded,) = self._db.execute(
                "select json_group_array(key) from documents "
                f"where key in ({', '.join('?' * len(keys))})",
                keys,
            ).fetchone()
            found.update(json.loads(encoded))
        self._keep([document for document in documents if document[0] in found])
        return found

    def _keep(self, documents: Sequence[tuple[str, str]], *, flush: bool = False) -> None:
        """(key, source) of finished documents for this run's output, inserted into ``seen``
        a few hundred to a statement (``flush``: now). A temporary table, never synced:
        nothing durable waits on it."""
        self._seen.extend(documents)
        if len(self._seen) < _LOOKUP_BATCH and not flush:
            return
        for start in range(0, len(self._seen), _LOOKUP_BATCH):
            batch = self._seen[start : start + _LOOKUP_BATCH]
            self._db.execute(
                f"insert or replace into seen values {', '.join(['(?, ?)'] * len(batch))}",
                [value for document in batch for value in document],
            )
        self._seen.clear()

    def _settle(self) -> None:
        """Everything this run finished, committed, and its output's list (``seen``) whole."""
        self._saved.flush()
        self._keep([], flush=True)

    def save(
        self, key: str, source: str, rows: Sequence[DocumentRow], calls: Sequence[CallRow]
    ) -> None:
        """Commit one finished document, durably, with the next group (see the module's
        docstring): it returns at once. Its stored calls go in the same transaction: the
        document's row is now the durable record."""
        self._saved.add(
            (_SAVE_DOCUMENT, (key, _encode(rows), _encode(calls))),
            ("delete from calls where doc = ?", (key,)),
        )
        self._keep([(key, source)])

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
        self._settle()
        query = (
            f"select s.source, d.{column} from seen s join documents d on d.key = s.key "
            f"union all select source, {column} from other_rows order by 1"
        )
        for source, encoded in self._db.execute(query):
            for record in json.loads(encoded):
                yield source, record

    # ---- The files written: a re-run that changed nothing leaves them as they are ----

    def output_digest(self, schema: str) -> str | None:
        """What this run's output is made of: its finished documents (each key names its
        content and settings) under their sources, and ``schema`` (the files' columns).
        None if it holds other rows (errors, skips: made afresh by each run)."""
        self._settle()
        if self._any("other_rows"):
            return None
        digest = hashlib.sha256(schema.encode())
        query = "select s.key, s.source from seen s join documents d on d.key = s.key order by 1"
        for key, source in self._db.execute(query):
            digest.update(f"{key}\0{source}\n".encode())
        return digest.hexdigest()

    def written(self, paths: Sequence[Path], digest: str) -> dict[str, int] | None:
        """The rows by status of the files at ``paths``, if the last run to write them wrote
        the output ``digest`` names and they are still those files (same inode, size and
        modification time): else None."""
        counts: set[str] = set()
        for path in paths:
            found = self._db.execute(
                "select stat, counts from written where path = ? and digest = ?",
                (str(path), digest),
            ).fetchone()
            current = _stat(path)
            if found is None or not current or found[0] != current:
                return None
            counts.add(found[1])
        return json.loads(counts.pop()) if len(counts) == 1 else None

    def record_written(self, paths: Sequence[Path], digest: str, counts: dict[str, int]) -> None:
        """The files at ``paths`` now hold the output ``digest`` names (``written``)."""
        self._db.execute("begin")
        for path in paths:
            self._db.execute(
                "insert or replace into written values (?, ?, ?, ?)",
                (str(path), _stat(path), digest, json.dumps(counts, sort_keys=True)),
            )
        self._db.execute("commit")

    # ---- Finished calls of unfinished documents: a re-run pays only for the others ----

    def stored_call(self, doc: str, request: str) -> tuple[str, str] | None:
        """The reply and attempts (as ``keep_call`` was given them) of the request hashed
        ``request`` for the document ``doc``, if an earlier run finished it."""
        if not self._earlier_calls:
            return None
        found = self._db.execute(
            "select reply, attempts from calls where doc = ? and request = ?", (doc, request)
        ).fetchone()
        return None if found is None else (str(found[0]), str(found[1]))

    def keep_call(self, doc: str, request: str, reply: str, attempts: str) -> None:
        """Commit one finished call with the next group, off the event loop: returns at once."""
        self._saved.add(
            (
                "insert or replace into calls (doc, request, reply, attempts) values (?, ?, ?, ?)",
                (doc, request, reply, attempts),
            )
        )

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
        self._db.execute("delete from written")  # first: the files no longer match the state
        self._db.execute("delete from documents")
        self.finished_any = False
        self._db.execute("delete from calls")
        self._earlier_calls = False
        self._db.execute("delete from batch_items")

    async def __aenter__(self) -> ResultStore:
        return self

    async def __aexit__(self, *exc: object) -> None:
        """Close on every way out, off the event loop (the last commit syncs the disk), and
        not to be cut short by a cancel: the lock must go."""
        with anyio.CancelScope(shield=True):
            try:
                await anyio.to_thread.run_sync(self._saved.close)
            finally:
                self._release()

    def close(self) -> None:
        """Commit what is queued, and let the job's lock go."""
        try:
            self._saved.close()
        finally:
            self._release()

    def _release(self) -> None:
        self._db.close()
        os.close(self._lock)  # releases the lock
