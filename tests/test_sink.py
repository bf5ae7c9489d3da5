"""Parquet output: every row in order across write batches, and the schema even when empty."""

from __future__ import annotations

from dataclasses import fields
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import polars as pl

from pipeline.core.rows import CallRow, DocumentRow
from pipeline.output.sink import (
    CALL_SCHEMA,
    DOC_SCHEMA,
    structured_schema,
    write_parquet,
    write_rows,
)

STRUCTURED = structured_schema(
    {
        "properties": {
            "title": {"type": "string"},
            "year": {"type": "integer"},
            "tags": {"type": "array", "items": {"type": "string"}},
        }
    }
)
SCHEMA = {**DOC_SCHEMA, **STRUCTURED}


def row(n: int) -> dict[str, Any]:
    return {
        "doc_id": f"d{n}",
        "source": f"doc-{n:03d}.txt",
        "status": "ok",
        "request_ids": [f"req_{n}"],
        "notes": [],
        "started_at": datetime(2026, 12, 1, tzinfo=UTC),
        "title": f"Title {n}",
        "year": 2000 + n,
        "tags": ["a", str(n)],
    }


def test_rows_written_in_several_batches_all_arrive_in_order(tmp_path: Path) -> None:
    path = tmp_path / "out.parquet"
    assert write_parquet((row(n) for n in range(23)), path, SCHEMA, batch_rows=5) == 23
    frame = pl.read_parquet(path)
    assert frame.schema == pl.Schema(SCHEMA)
    assert frame["source"].to_list() == [f"doc-{n:03d}.txt" for n in range(23)]
    assert frame["tags"][22].to_list() == ["a", "22"]
    assert frame["year"].sum() == sum(2000 + n for n in range(23))


def test_no_rows_is_a_readable_file_with_every_column(tmp_path: Path) -> None:
    path = tmp_path / "out.parquet"
    assert write_parquet([], path, SCHEMA) == 0
    frame = pl.read_parquet(path)
    assert len(frame) == 0
    assert frame.schema == pl.Schema(SCHEMA)


def test_the_schema_is_the_typed_rows_fields_in_order() -> None:
    assert list(DOC_SCHEMA) == [f.name for f in fields(DocumentRow) if f.name != "extra"]
    assert list(CALL_SCHEMA) == [f.name for f in fields(CallRow)]
    assert DOC_SCHEMA["request_ids"] == pl.List(pl.String)
    assert DOC_SCHEMA["started_at"] == pl.Datetime("us", "UTC")
    assert DOC_SCHEMA["chunk"] == pl.Int64
    assert DOC_SCHEMA["cost_usd"] == pl.Float64


def test_typed_rows_are_written_with_their_extra_columns_shaped_to_type(tmp_path: Path) -> None:
    when = datetime(2026, 12, 1, tzinfo=UTC)
    rows = [
        DocumentRow(
            doc_id="d1",
            source="a.txt",
            status="ok",
            request_ids=("req_1",),
            notes=("cut at max_tokens",),
            started_at=when,
            finished_at=when,
            extra={"title": "T", "year": 2001.0, "tags": ["x", 3]},
        ),
        DocumentRow(
            doc_id="d2",
            source="b.txt",
            status="error",
            started_at=when,
            finished_at=when,
            extra={"year": "not a number"},
        ),
    ]
    path = tmp_path / "out.parquet"
    assert write_rows(rows, path, STRUCTURED) == 2
    frame = pl.read_parquet(path)
    assert frame.schema == pl.Schema(SCHEMA)
    assert frame["year"].to_list() == [2001, None]  # a float that is an integer fits; text not
    assert frame["tags"][0].to_list() == ["x", "3"]
    assert frame["notes"][0].to_list() == ["cut at max_tokens"]
    assert frame["title"].to_list() == ["T", None]
