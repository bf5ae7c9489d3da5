"""Parquet output: every row in order across write batches, and the schema even when empty."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import polars as pl

from pipeline.output.sink import DOC_SCHEMA, structured_schema, write_parquet

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
