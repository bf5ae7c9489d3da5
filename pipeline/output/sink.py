"""Results to Parquet: one row per input document, and one row per API call beside it.

Both files are written with polars and pyarrow, atomically (``pipeline.core.atomic``): a reader
never sees half a file.

Documents file (``OUTPUT.parquet``), one row per input document (per chunk with the
``per_chunk`` strategy):

| column | type | |
|---|---|---|
| doc_id | str | stable: from the source path and the content hash |
| source | str | the path relative to its input folder |
| status | str | ``ok``, ``error`` or ``skipped`` |
| chunk | int | the chunk's number from 1 (``per_chunk`` only; else null) |
| text | str | the model's answer (text blocks joined) |
| structured_json | str | the forced tool's input as JSON (structured jobs) |
| *schema fields* | typed | one column per property of ``structured.schema`` |
| model | str | the model that answered |
| stop_reason | str | of the final call (``end_turn``, ``max_tokens``, ...) |
| chunks | int | how many chunks the document was split into |
| input_tokens, output_tokens | int | summed over the document's calls |
| cache_read_input_tokens, cache_creation_input_tokens | int | the same, for prompt caching |
| cost_usd | float | estimated from the usage and the job's prices (null if no price is known) |
| attempts | int | HTTP attempts, retries included |
| latency_s | float | summed over the document's attempts |
| request_ids | list[str] | of every attempt that got one: what a provider's support asks for |
| error_type, error_message | str | what went wrong and what to do (status ``error``/``skipped``) |
| started_at, finished_at | datetime (UTC) | |
| kind, language | str | ``pdf``, ``text``, ``markdown``, ``code``, ``image``; source language |
| notes | list[str] | things worth knowing, e.g. an encoding fallback, a truncation |
| content_hash | str | sha256 of the file |

Calls file (``OUTPUT.calls.parquet``): one row per HTTP attempt: ``doc_id``, ``call``
(which part of the document: ``map/0``, ``reduce/1/0``, ``whole``), ``attempt``,
``status`` (HTTP status, null when none came back), ``error_type``, ``request_id``,
``latency_s``, ``started_at``, and for the successful attempt ``input_tokens``,
``output_tokens``, ``stop_reason``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping
from itertools import islice
from pathlib import Path
from typing import Any

import polars as pl
import pyarrow.parquet as pq

from pipeline.core.atomic import replacing

DOC_SCHEMA: dict[str, Any] = {
    "doc_id": pl.String,
    "source": pl.String,
    "status": pl.String,
    "chunk": pl.Int64,
    "text": pl.String,
    "structured_json": pl.String,
    "model": pl.String,
    "stop_reason": pl.String,
    "chunks": pl.Int64,
    "input_tokens": pl.Int64,
    "output_tokens": pl.Int64,
    "cache_read_input_tokens": pl.Int64,
    "cache_creation_input_tokens": pl.Int64,
    "cost_usd": pl.Float64,
    "attempts": pl.Int64,
    "latency_s": pl.Float64,
    "request_ids": pl.List(pl.String),
    "error_type": pl.String,
    "error_message": pl.String,
    "started_at": pl.Datetime("us", "UTC"),
    "finished_at": pl.Datetime("us", "UTC"),
    "kind": pl.String,
    "language": pl.String,
    "notes": pl.List(pl.String),
    "content_hash": pl.String,
}

CALL_SCHEMA: dict[str, Any] = {
    "doc_id": pl.String,
    "call": pl.String,
    "attempt": pl.Int64,
    "status": pl.Int64,
    "error_type": pl.String,
    "request_id": pl.String,
    "latency_s": pl.Float64,
    "started_at": pl.Datetime("us", "UTC"),
    "input_tokens": pl.Int64,
    "output_tokens": pl.Int64,
    "stop_reason": pl.String,
}

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
    """Extra columns for a structured job; a property that clashes with a standard column
    is prefixed ``field_``."""
    if not schema:
        return {}
    columns: dict[str, Any] = {}
    for name, sub in schema.get("properties", {}).items():
        column = f"field_{name}" if name in DOC_SCHEMA else name
        columns[column] = dtype_for(sub)
    return columns


def write_parquet(
    rows: Iterable[Mapping[str, Any]],
    path: Path,
    schema: Mapping[str, Any],
    *,
    batch_rows: int = 5_000,
) -> int:
    """Write ``rows`` to ``path`` atomically, ``batch_rows`` at a time (memory follows the
    batch, not the file); returns how many were written."""
    with replacing(path) as partial:
        count = _write_batches(iter(rows), partial, dict(schema), batch_rows)
    return count


def _write_batches(
    rows: Iterator[Mapping[str, Any]], path: Path, schema: dict[str, Any], batch_rows: int
) -> int:
    count = 0
    arrow_schema = pl.DataFrame(schema=schema).to_arrow().schema  # an empty file has it too
    with pq.ParquetWriter(path, arrow_schema, compression="zstd") as writer:
        while batch := [
            {name: row.get(name) for name in schema} for row in islice(rows, batch_rows)
        ]:
            writer.write_table(pl.DataFrame(batch, schema=schema).to_arrow())
            count += len(batch)
    return count
