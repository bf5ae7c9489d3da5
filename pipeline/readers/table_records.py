"""The rows of a table file as records, read a slice at a time, each numbered where a user
finds it: a Parquet table by batches of ``BATCH_ROWS`` (pyarrow's ``iter_batches``: a row group
at a time, only the columns used), numbered by row from 1; CSV/TSV through Python's ``csv``
(line by line, strict quoting) and JSONL line by line, numbered by the line in the file (from 1,
the header being line 1) where the row starts. A line that cannot be a row is a problem record
at its line, and reading goes on after it; only a quote never closed ends a CSV early, and its
problem names the lines left unread. ``cell`` and ``text_of`` make a record's cells what a
document holds."""

from __future__ import annotations

import csv
import datetime as dt
import decimal
import io
import json
from collections.abc import Iterator
from typing import IO, Any

import pyarrow.parquet as pq

from pipeline.core.errors import InputProblem, Unreadable

BATCH_ROWS = 1_000
_CSV_FIELD_LIMIT = (1 << 31) - 1  # a cell's size is capped by inputs.max_file_bytes instead

Record = dict[str, Any] | InputProblem


def records(fmt: str, file: IO[bytes], columns: tuple[str, ...]) -> Iterator[tuple[int, Record]]:
    """(line of the row's start in the file from 1, or Parquet's row number from 1; the used
    columns' cells or a problem) for each row."""
    if fmt == "jsonl":
        yield from _json_lines(file, columns)
        return
    if fmt != "parquet":
        yield from _csv_lines(file, "\t" if fmt == "tsv" else ",", columns)
        return
    parquet = pq.ParquetFile(file)
    present = [c for c in columns if c in parquet.schema_arrow.names]
    number = 0
    for batch in parquet.iter_batches(batch_size=BATCH_ROWS, columns=present):
        for record in batch.to_pylist():
            number += 1
            yield number, record


def _csv_lines(
    file: IO[bytes], delimiter: str, columns: tuple[str, ...]
) -> Iterator[tuple[int, Record]]:
    """CSV/TSV records by the line each starts on. Cells not UTF-8 come as bytes (decoded, or
    refused, row by row); a line the parser refuses is that line's problem, and the reading
    goes on after it, but for a quote never closed, which leaves the rest of the file unread."""
    csv.field_size_limit(max(csv.field_size_limit(), _CSV_FIELD_LIMIT))
    text = io.TextIOWrapper(file, encoding="utf-8-sig", errors="surrogateescape", newline="")
    try:
        yield from _csv_records(csv.reader(text, delimiter=delimiter, strict=True), columns)
    finally:
        text.detach()  # the file is the caller's to close


def _csv_records(reader: Any, columns: tuple[str, ...]) -> Iterator[tuple[int, Record]]:
    index: dict[str, int] | None = None
    width = 0
    while True:
        start = reader.line_num + 1
        try:
            cells = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            if "end of data" not in str(exc):
                yield start, Unreadable(f"line {start:,} is not valid CSV ({exc}); fix the line")
                continue
            last = reader.line_num
            yield (
                start,
                Unreadable(
                    f"line {start:,} opens a quoted cell that is never closed, so the rest of the "
                    f"file, {last - start + 1:,} lines ({start:,} to {last:,}), could not be read; "
                    'close the quote (a quote inside a quoted cell is written twice: "")'
                ),
            )
            return
        if not cells:
            continue  # a blank line
        if index is None:
            index = {name: n for n, name in enumerate(cells)}
            width = len(cells)
            continue
        if len(cells) != width:
            yield (
                start,
                Unreadable(
                    f"line {start:,} has {len(cells)} fields where the header has {width}; fix the "
                    "line (a cell holding the delimiter or a line break must be quoted)"
                ),
            )
            continue
        yield start, {c: _raw(cells[index[c]]) if c in index else None for c in columns}


def _raw(cell: str) -> str | bytes:
    """A CSV cell as read, or its bytes when it is not UTF-8 (``_cell`` says which byte)."""
    if cell.isascii():
        return cell
    try:
        cell.encode("utf-8")
    except UnicodeEncodeError:
        return cell.encode("utf-8", "surrogateescape")
    return cell


def _json_lines(file: IO[bytes], columns: tuple[str, ...]) -> Iterator[tuple[int, Record]]:
    for number, line in enumerate(file, 1):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except ValueError as exc:
            yield number, Unreadable(f"line {number} is not JSON ({exc}); fix the line")
            continue
        if not isinstance(value, dict):
            yield number, Unreadable(f"line {number} is not a JSON object; fix the line")
            continue
        yield number, {column: value.get(column) for column in columns}


def cell(value: Any, column: str, where: str) -> Any:
    """A cell as JSON can hold it: bytes decoded (or Unreadable), dates as ISO text."""
    if isinstance(value, bytes):
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise Unreadable(
                f"{where}: its {column!r} cell is not UTF-8 text (byte {exc.start:,}); export "
                "the table as UTF-8"
            ) from None
    if isinstance(value, dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, decimal.Decimal | dt.timedelta):
        return str(value)
    return value


def text_of(value: Any) -> str:
    """A cell as text: null is empty, true/false as JSON writes them, numbers in decimal
    (Python's ``str``: ``2.5``, ``1e-07``), lists and objects as JSON text."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | dict):
        return json.dumps(value, ensure_ascii=False, default=str)
    return str(value)
