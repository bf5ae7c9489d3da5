"""Durable progress: every finished document is committed to SQLite as it completes.

The store sits beside the output (``OUTPUT.state.sqlite``), in WAL mode with full
synchronous commits, so a crash, a ``kill -9`` or a power cut loses at most the calls in
flight. A document is keyed by its ``doc_id`` (source path + content hash) and a hash of
everything that shapes its answer (model, parameters, prompts, chunking, schema); a re-run
finds its finished rows here and sends nothing for them. Only documents whose rows are all
``ok`` count as finished: errors are tried again on the next run.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from datetime import datetime
from pathlib import Path
from typing import Any

_SCHEMA = """
create table if not exists documents (
    key text primary key,
    rows text not null,
    calls text not null
)
"""
_DATETIMES = ("started_at", "finished_at")


def settings_hash(settings: dict[str, Any]) -> str:
    """A short, stable hash of the settings that shape an answer."""
    encoded = json.dumps(settings, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(encoded.encode()).hexdigest()[:16]


def _encode(rows: list[dict[str, Any]]) -> str:
    return json.dumps(rows, default=lambda v: v.isoformat() if isinstance(v, datetime) else str(v))


def _decode(text: str) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = json.loads(text)
    for row in rows:
        for name in _DATETIMES:
            if isinstance(row.get(name), str):
                row[name] = datetime.fromisoformat(row[name])
    return rows


class ResultStore:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._db = sqlite3.connect(path, isolation_level=None)
        self._db.execute("pragma journal_mode=wal")
        self._db.execute("pragma synchronous=full")
        self._db.execute(_SCHEMA)

    def finished(self, key: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]] | None:
        """The rows and call rows stored for ``key``, or None."""
        found = self._db.execute(
            "select rows, calls from documents where key = ?", (key,)
        ).fetchone()
        if found is None:
            return None
        return _decode(found[0]), _decode(found[1])

    def save(self, key: str, rows: list[dict[str, Any]], calls: list[dict[str, Any]]) -> None:
        """Commit one finished document, durably, before anything else happens."""
        self._db.execute(
            "insert or replace into documents (key, rows, calls) values (?, ?, ?)",
            (key, _encode(rows), _encode(calls)),
        )

    def forget_all(self) -> None:
        self._db.execute("delete from documents")

    def close(self) -> None:
        self._db.close()
