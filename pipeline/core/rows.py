"""The rows a run leaves, defined once.

``DocumentRow`` is one row of the results file (one per input document, one per chunk with
``per_chunk``); ``CallRow`` one row of the calls file (one per HTTP attempt). Their fields, in
order, are the files' standard columns: the Parquet schema (``pipeline.output.sink``), the
state database's encoding (``pipeline.state.store``) and the report's counts derive from them.
Plain Python types here: polars is loaded only when a file is written.

A document row's ``extra`` holds the columns a job adds, by column name, as they came: one
per property of ``structured.schema`` and one per kept input column of a table job. They are
shaped to their column's type when the file is written.
"""

from __future__ import annotations

import dataclasses
import types
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, get_args, get_origin, get_type_hints

Status = Literal["ok", "error", "skipped"]
STATUSES: tuple[Status, ...] = get_args(Status)

# The kinds of column a row's field can be, named after the field's Python type.
Kind = Literal["str", "int", "float", "list[str]", "datetime"]


@dataclass(frozen=True, kw_only=True)
class DocumentRow:
    doc_id: str  # stable: from the source path and the content hash
    source: str  # the path relative to its input folder (or the object's URL, the table row)
    status: Status
    chunk: int | None = None  # the chunk's number from 1 (``per_chunk`` only)
    text: str | None = None  # the model's answer
    structured_json: str | None = None  # the forced tool's input as JSON (structured jobs)
    model: str | None = None
    stop_reason: str | None = None  # of the final call
    chunks: int = 0  # how many chunks the document was split into
    input_tokens: int = 0  # summed over the document's calls, and the next three too
    output_tokens: int = 0
    cache_read_input_tokens: int = 0
    cache_creation_input_tokens: int = 0
    cost_usd: float | None = None  # estimated from the usage; None if no price is known
    attempts: int = 0  # HTTP attempts, retries included
    latency_s: float = 0.0  # summed over the document's attempts
    request_ids: tuple[str, ...] = ()  # of every attempt that got one
    error_type: str | None = None  # what went wrong (status ``error`` or ``skipped``)
    error_message: str | None = None  # ... and what to do
    started_at: datetime
    finished_at: datetime
    kind: str | None = None  # pdf, text, markdown, code, image, table
    language: str | None = None
    notes: tuple[str, ...] = ()  # things worth knowing: an encoding fallback, a truncation
    content_hash: str | None = None  # sha256 of the file
    extra: Mapping[str, Any] = field(default_factory=dict)

    def record(self) -> dict[str, Any]:
        """The row as one flat mapping of column to value (``extra`` included)."""
        return {**_standard(self), **self.extra}

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> DocumentRow:
        return cls(
            **_typed(record, DOCUMENT_COLUMNS),
            extra={k: v for k, v in record.items() if k not in DOCUMENT_COLUMNS},
        )


@dataclass(frozen=True, kw_only=True)
class CallRow:
    doc_id: str
    call: str  # which part of the document: ``whole``, ``chunk/0``, ``reduce/1/0``, ``final/0``
    attempt: int
    status: int | None  # the HTTP status; None when none came back
    error_type: str | None
    request_id: str | None
    latency_s: float
    started_at: datetime
    input_tokens: int | None = None  # the successful attempt's, and the next two
    output_tokens: int | None = None
    stop_reason: str | None = None
    # A review's round (``run.review``): the tool calls its reply made, one line each, and
    # the results sent back (``pipeline.readers.tools``)
    tool_calls: tuple[str, ...] = ()
    tool_results: tuple[str, ...] = ()

    def record(self) -> dict[str, Any]:
        return _standard(self)

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> CallRow:
        return cls(**_typed(record, CALL_COLUMNS))


def _kind(hint: Any) -> Kind:
    """The column kind of a field's type hint (``X | None`` is the kind of ``X``)."""
    if get_origin(hint) is Literal:
        return "str"
    if isinstance(hint, types.UnionType):
        (hint,) = [a for a in get_args(hint) if a is not type(None)]
    if get_origin(hint) is tuple:
        return "list[str]"
    kinds: dict[Any, Kind] = {str: "str", int: "int", float: "float", datetime: "datetime"}
    return kinds[hint]


def _columns(row_type: type[Any]) -> dict[str, Kind]:
    hints = get_type_hints(row_type)
    return {f.name: _kind(hints[f.name]) for f in dataclasses.fields(row_type) if f.name != "extra"}


DOCUMENT_COLUMNS: dict[str, Kind] = _columns(DocumentRow)
CALL_COLUMNS: dict[str, Kind] = _columns(CallRow)


def _standard(row: DocumentRow | CallRow) -> dict[str, Any]:
    values = {name: getattr(row, name) for name in _COLUMNS_OF[type(row)]}
    for name, kind in _COLUMNS_OF[type(row)].items():
        if kind == "list[str]":
            values[name] = list(values[name])
    return values


_COLUMNS_OF: dict[type[Any], dict[str, Kind]] = {
    DocumentRow: DOCUMENT_COLUMNS,
    CallRow: CALL_COLUMNS,
}


def _typed(record: Mapping[str, Any], columns: Mapping[str, Kind]) -> dict[str, Any]:
    """A record's standard columns as the row's field types (what JSON gave back as text
    or lists: datetimes and tuples)."""
    values: dict[str, Any] = {}
    for name, kind in columns.items():
        if name not in record:
            continue
        value = record[name]
        if kind == "datetime" and isinstance(value, str):
            value = datetime.fromisoformat(value)
        elif kind == "list[str]" and value is not None:
            value = tuple(value)
        values[name] = value
    return values


def structured_columns(schema: Mapping[str, Any] | None) -> dict[str, Mapping[str, Any]]:
    """The columns a structured job adds: one per property of its schema, by column name,
    with the property's JSON schema; a property that clashes with a standard column is
    prefixed ``field_``."""
    if not schema:
        return {}
    return {column_of(name): sub for name, sub in schema.get("properties", {}).items()}


def column_of(name: str) -> str:
    """The column a structured property named ``name`` lands in."""
    return f"field_{name}" if name in DOCUMENT_COLUMNS else name
