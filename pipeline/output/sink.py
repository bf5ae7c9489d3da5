"""Results to Parquet: one row per input document, and one row per API call beside it.

Both files are written with polars, atomically (``pipeline.core.atomic``): a reader
never sees half a file.

The columns are the fields of ``pipeline.core.rows.DocumentRow`` (the results file: one row
per input document, one per chunk with ``per_chunk``) and ``CallRow`` (the calls file: one row
per HTTP attempt), in order, followed by the columns a job adds (one per property of its
structured schema, one per kept input column), each value shaped here to its column's type.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping
from itertools import islice
from pathlib import Path
from typing import Any

import polars as pl
from polars.io.plugins import register_io_source

from pipeline.core.atomic import replacing
from pipeline.core.rows import (
    CALL_COLUMNS,
    DOCUMENT_COLUMNS,
    CallRow,
    DocumentRow,
    Kind,
    structured_columns,
)

_POLARS: dict[Kind, Any] = {
    "str": pl.String,
    "int": pl.Int64,
    "float": pl.Float64,
    "list[str]": pl.List(pl.String),
    "datetime": pl.Datetime("us", "UTC"),
}
DOC_SCHEMA: dict[str, Any] = {name: _POLARS[kind] for name, kind in DOCUMENT_COLUMNS.items()}
CALL_SCHEMA: dict[str, Any] = {name: _POLARS[kind] for name, kind in CALL_COLUMNS.items()}

_SCALARS: dict[str, Any] = {
    "string": pl.String,
    "integer": pl.Int64,
    "number": pl.Float64,
    "boolean": pl.Boolean,
}


def dtype_for(schema: Mapping[str, Any]) -> Any:
    """The polars type for a JSON schema: scalars typed, objects as structs, arrays as lists.
    Anything else (unions, free-form objects) is kept as its JSON text."""
    kind = schema.get("type")
    if isinstance(kind, list):
        options = [k for k in kind if k != "null"]
        kind = options[0] if len(options) == 1 else None
    if "enum" in schema and kind is None:
        kind = "string"
    if kind in _SCALARS:
        return _SCALARS[kind]
    if kind == "array" and isinstance(schema.get("items"), Mapping):
        return pl.List(dtype_for(schema["items"]))
    if kind == "object" and schema.get("properties"):
        return pl.Struct({k: dtype_for(v) for k, v in schema["properties"].items()})
    return pl.String  # as JSON


def fit(value: Any, dtype: Any) -> Any:
    """``value`` shaped to ``dtype``; what does not fit becomes null (the raw JSON is kept
    in ``structured_json``, so nothing is lost)."""
    if value is None:
        return None
    if dtype == pl.String:
        return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    if dtype == pl.Boolean:
        return value if isinstance(value, bool) else None
    if dtype == pl.Int64:
        if isinstance(value, bool):
            return None
        if isinstance(value, int):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        return None
    if dtype == pl.Float64:
        return (
            float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None
        )
    if isinstance(dtype, pl.List):
        if not isinstance(value, list):
            return None
        return [fit(item, dtype.inner) for item in value]
    if isinstance(dtype, pl.Struct):
        if not isinstance(value, Mapping):
            return None
        return {f.name: fit(value.get(f.name), f.dtype) for f in dtype.fields}
    return None


def structured_schema(schema: Mapping[str, Any] | None) -> dict[str, Any]:
    """The polars types of the columns a structured job adds (``rows.structured_columns``)."""
    return {column: dtype_for(sub) for column, sub in structured_columns(schema).items()}


def write_rows(rows: Iterable[DocumentRow], path: Path, extra: Mapping[str, Any]) -> int:
    """The results file: the standard columns, then ``extra`` (column -> polars type), each
    extra value shaped to its column's type (``fit``)."""
    extra = dict(extra)

    def records() -> Iterator[dict[str, Any]]:
        for row in rows:
            record = row.record()
            for name, dtype in extra.items():
                record[name] = fit(record.get(name), dtype)
            yield record

    return write_parquet(records(), path, {**DOC_SCHEMA, **extra})


def write_calls(calls: Iterable[CallRow], path: Path) -> int:
    """The calls file: one row per HTTP attempt."""
    return write_parquet((call.record() for call in calls), path, CALL_SCHEMA)


def write_parquet(
    rows: Iterable[Mapping[str, Any]],
    path: Path,
    schema: Mapping[str, Any],
    *,
    batch_rows: int = 1_000,
) -> int:
    """Write ``rows`` to ``path`` atomically, ``batch_rows`` at a time (memory follows the
    batch, not the file); returns how many were written."""
    with replacing(path) as partial:
        count = _write_batches(iter(rows), partial, dict(schema), batch_rows)
    return count


def _write_batches(
    rows: Iterator[Mapping[str, Any]], path: Path, schema: dict[str, Any], batch_rows: int
) -> int:
    """polars' streaming Parquet sink, fed a frame of ``batch_rows`` at a time, a row group
    each (pyarrow's writer did this before: its import alone was 33 MB at the end of a run).
    The frames are made in polars' own thread, one at a time, while the caller waits: what
    ``rows`` reads from (the state's connection) is used by one thread at a time."""
    count = 0

    def frames(*_: object) -> Iterator[pl.DataFrame]:
        nonlocal count
        while batch := [
            {name: row.get(name) for name in schema} for row in islice(rows, batch_rows)
        ]:
            count += len(batch)
            yield pl.DataFrame(batch, schema=schema)

    source = register_io_source(frames, schema=pl.Schema(schema))
    source.sink_parquet(path, compression="zstd", row_group_size=batch_rows)
    return count
