"""Rows of tables as documents: CSV, TSV, JSONL/NDJSON and Parquet, read a slice at a time.

With ``inputs.text_column`` set, each such file among the inputs is a table and each of its
rows a document (any other file is a ``skipped`` row that says so):

- text: the ``text_column`` cell; id: the ``id_column`` cell, else the first 16 hex digits of
  the row's content hash; ``source``: ``TABLE#ID`` (TABLE named as a file would be);
- content hash: SHA-256 of the columns the job uses (text, id, the templates' columns,
  ``keep_columns``), so a re-run sends a row again only when one of those changed, and two
  rows with the same id and content are one document;
- ``fields``: the templates' columns as text (null is empty); ``kept``: ``keep_columns``,
  copied into the row's output under their output names.

Reading never holds a table whole: Parquet by batches of ``BATCH_ROWS`` (pyarrow's
``iter_batches``: a row group at a time, only the columns used), CSV/TSV by 1 MB blocks
(pyarrow's streaming reader, every cell as bytes so that a cell that is not UTF-8 is one
row's error), JSONL line by line. A local file and an object in a bucket (ranged reads through
fsspec, ``readers.remote``) go through the same code.

Bad rows are rows, and the table goes on: a null or blank text is ``skipped`` (EmptyFile), a
text over ``inputs.max_file_bytes`` is ``skipped`` (TooLarge), credentials in a text are
``skipped`` (SecretFile); a cell that is not UTF-8, an empty id, a JSONL line that is not a
JSON object or a CSV line with the wrong number of fields is an ``error`` (Unreadable). Their
source is ``TABLE#ID``, or ``TABLE#row-N`` (the N-th data row; the line for JSONL) when the
id is not known.
"""

from __future__ import annotations

import datetime as dt
import decimal
import hashlib
import json
import os
import stat
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import IO, Any

import polars as pl
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from pipeline.errors import ConfigError, EmptyFile, InputProblem, Skipped, TooLarge, Unreadable
from pipeline.models import Document, Section
from pipeline.readers import remote
from pipeline.readers.formats import TABLES, suffix_of
from pipeline.readers.options import Candidate, InputOptions, TableOptions
from pipeline.readers.read import _OPEN_FLAGS, document_id, secret_file
from pipeline.readers.sensitive import secret_by_content

FORMATS = {
    ".csv": "csv",
    ".tsv": "tsv",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".parquet": "parquet",
}
assert set(FORMATS) == TABLES
SUFFIXES = ", ".join(FORMATS)
BATCH_ROWS = 1_000
_CSV_BLOCK = 1 << 20
_BUILT_IN = "a built-in placeholder"

Record = dict[str, Any] | InputProblem


def table_format(name: str) -> str | None:
    return FORMATS.get(suffix_of(name))


@contextmanager
def _opened(candidate: Candidate) -> Iterator[IO[bytes]]:
    file = remote.open_binary(candidate) if candidate.url is not None else _open_local(candidate)
    with file:
        yield file


def _open_local(candidate: Candidate) -> IO[bytes]:
    """Opened as ``read_document`` opens a file: never blocking, only the regular file
    discovery saw (a file swapped for a link or another file since is refused)."""
    label = candidate.source
    try:
        fd = os.open(candidate.path, _OPEN_FLAGS)
    except OSError as exc:
        raise Unreadable(f"{label} cannot be opened ({exc.strerror or exc})") from exc
    info = os.fstat(fd)
    if candidate.identity is not None and (info.st_dev, info.st_ino) != candidate.identity:
        os.close(fd)
        raise Unreadable(f"{label} changed after the inputs were listed; run again to read it")
    if not stat.S_ISREG(info.st_mode):
        os.close(fd)
        raise Skipped(f"{label} is not a regular file (a directory, pipe or device)")
    return os.fdopen(fd, "rb")


# ---- schema ----------------------------------------------------------------------------


def _dtype(kind: pa.DataType) -> Any:
    if pa.types.is_boolean(kind):
        return pl.Boolean
    if pa.types.is_integer(kind):
        return pl.Int64
    if pa.types.is_floating(kind):
        return pl.Float64
    return pl.String


def _py_dtype(value: Any) -> Any:
    if isinstance(value, bool):
        return pl.Boolean
    if isinstance(value, int):
        return pl.Int64
    if isinstance(value, float):
        return pl.Float64
    return pl.String


def columns_of(candidate: Candidate) -> dict[str, Any]:
    """The table's columns and the output type of each (CSV cells are text; JSONL's types
    are its first line's)."""
    fmt = table_format(candidate.path.name)
    try:
        with _opened(candidate) as file:
            if fmt == "parquet":
                schema = pq.read_schema(file)
                return {f.name: _dtype(f.type) for f in schema}
            if fmt == "jsonl":
                for line in file:
                    if line.strip():
                        first = json.loads(line)
                        if isinstance(first, dict):
                            return {k: _py_dtype(v) for k, v in first.items()}
                        break
                return {}
            reader = pacsv.open_csv(file, **_csv_options(fmt, None, lambda _row: "skip"))
            return dict.fromkeys(reader.schema.names, pl.String)
    except InputProblem as problem:
        raise ConfigError(f"inputs.paths: {problem.message}") from None
    except (pa.ArrowException, ValueError, OSError) as exc:
        raise ConfigError(
            f"inputs.paths: {candidate.source} is not a readable {fmt} table ({exc}); fix it "
            "or leave it out with inputs.exclude"
        ) from None


def _fields(table: TableOptions) -> dict[str, str]:
    """Each column the job uses, and the field that names it (for error messages)."""
    named = dict.fromkeys(table.template_columns, "prompt.template")
    named.update({column: "inputs.keep_columns" for column, _ in table.keep})
    if table.id_column is not None:
        named[table.id_column] = "inputs.id_column"
    named[table.text_column] = "inputs.text_column"
    return named


def check(candidates: Iterable[Candidate | InputProblem], table: TableOptions) -> dict[str, Any]:
    """Check that every table has the columns the job names (ConfigError naming the columns
    there are); return the output types of the kept columns (the first table's)."""
    kept: dict[str, Any] | None = None
    for candidate in candidates:
        if not isinstance(candidate, Candidate) or table_format(candidate.path.name) is None:
            continue
        columns = columns_of(candidate)
        for column, field in _fields(table).items():
            if column not in columns:
                there = ", ".join(columns) or "none"
                raise ConfigError(
                    f"{field}: {candidate.source} has no column {column!r}; its columns are: "
                    f"{there} (templates may also use the built-in placeholders)"
                )
        if kept is None:
            kept = {out: columns[column] for column, out in table.keep}
    if kept is None:
        raise ConfigError(
            f"inputs.text_column is set, so the inputs must hold tables ({SUFFIXES}); none "
            "was found in inputs.paths"
        )
    return kept


# ---- rows --------------------------------------------------------------------------------


def rows(candidate: Candidate, options: InputOptions) -> Iterator[Document | InputProblem]:
    """Each row of a table as a Document, or an InputProblem (``source`` set) for a bad row;
    an unreadable table is one problem row, after the rows read before the fault."""
    table = options.table
    assert table is not None
    fmt = table_format(candidate.path.name)
    if fmt is None:
        yield _tagged(
            Skipped(
                f"{candidate.source} is not a table ({SUFFIXES}) and inputs.text_column makes "
                "the rows of tables the documents; leave it out with inputs.exclude"
            ),
            candidate.source,
        )
        return
    number = 0
    try:
        with _opened(candidate) as file:
            for number, record in _records(fmt, file, table.columns):
                yield _row(candidate, number, record, options)
    except InputProblem as problem:
        yield _tagged(problem, candidate.source)
    except (pa.ArrowException, ValueError, OSError) as exc:
        where = f"after row {number:,}" if number else "at its start"
        yield _tagged(
            Unreadable(f"{candidate.source} could not be read {where} ({exc}); fix the table"),
            f"{candidate.source}#row-{number + 1}",
        )


def _tagged(problem: InputProblem, source: str) -> InputProblem:
    problem.source = source
    return problem


def _csv_options(fmt: str | None, columns: tuple[str, ...] | None, invalid: Any) -> dict[str, Any]:
    convert = pacsv.ConvertOptions()
    if columns is not None:
        convert = pacsv.ConvertOptions(
            include_columns=list(columns),
            include_missing_columns=True,
            column_types=dict.fromkeys(columns, pa.binary()),
        )
    return {
        "read_options": pacsv.ReadOptions(block_size=_CSV_BLOCK, use_threads=False),
        "parse_options": pacsv.ParseOptions(
            delimiter="\t" if fmt == "tsv" else ",",
            newlines_in_values=True,
            invalid_row_handler=invalid,
        ),
        "convert_options": convert,
    }


def _records(fmt: str, file: IO[bytes], columns: tuple[str, ...]) -> Iterator[tuple[int, Record]]:
    """(row number from 1, the used columns' cells or a problem) for each row."""
    if fmt == "jsonl":
        yield from _json_lines(file, columns)
        return
    if fmt == "parquet":
        parquet = pq.ParquetFile(file)
        present = [c for c in columns if c in parquet.schema_arrow.names]
        batches = parquet.iter_batches(batch_size=BATCH_ROWS, columns=present)
    else:
        bad: list[str] = []

        def invalid(row: Any) -> str:
            bad.append(f"{row.actual_columns} fields where the header has {row.expected_columns}")
            return "skip"

        batches = pacsv.open_csv(file, **_csv_options(fmt, columns, invalid))
    number = 0
    for batch in batches:
        if fmt != "parquet":
            for why in bad:  # numbered after the row before them: the reader skipped them
                yield number + 1, Unreadable(f"a line after row {number:,} has {why}; fix it")
            bad.clear()
        for record in batch.to_pylist():
            number += 1
            yield number, record


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


def _row(
    candidate: Candidate, number: int, record: Record, options: InputOptions
) -> Document | InputProblem:
    table = options.table
    assert table is not None
    where = f"{candidate.source}#row-{number}"
    if isinstance(record, InputProblem):
        record.message = f"{where}: {record.message}"
        record.args = (record.message,)
        return _tagged(record, where)
    try:
        values = {column: _cell(record.get(column), column, where) for column in table.columns}
    except Unreadable as bad_cell:
        return _tagged(bad_cell, where)
    encoded = json.dumps(
        [[column, values[column]] for column in table.columns], ensure_ascii=False, default=str
    )
    content_hash = hashlib.sha256(encoded.encode("utf-8", "surrogatepass")).hexdigest()
    row_id = content_hash[:16]
    if table.id_column is not None:
        given = values[table.id_column]
        if given is None or not str(given).strip():
            no_id = Unreadable(
                f"{where}: its {table.id_column!r} cell (inputs.id_column) is empty; give every "
                "row an id, or leave inputs.id_column unset to key rows by their content"
            )
            return _tagged(no_id, where)
        row_id = _text(given)
    source = f"{candidate.source}#{row_id}"
    kept = {out: _kept(values[column]) for column, out in table.keep}
    problem = _unsendable(candidate, source, values, options)
    if problem is not None:
        problem.kept = kept
        return problem
    return Document(
        doc_id=document_id(source, content_hash),
        source=source,
        path=candidate.path,
        kind="text",
        content_hash=content_hash,
        size_bytes=len(_text(values[table.text_column]).encode("utf-8", "surrogatepass")),
        sections=(Section(_text(values[table.text_column])),),
        fields={column: _text(values[column]) for column in table.template_columns},
        kept=kept,
    )


def _unsendable(
    candidate: Candidate, source: str, values: dict[str, Any], options: InputOptions
) -> InputProblem | None:
    """Why this row's text cannot be sent (a skipped row), or None."""
    assert options.table is not None
    column = options.table.text_column
    text = values[column]
    problem: InputProblem | None = None
    if text is None or not _text(text).strip():
        problem = EmptyFile(f"{source}: its {column!r} cell is empty: there is nothing to send")
    else:
        size = len(_text(text).encode("utf-8", "surrogatepass"))
        limit = options.max_file_bytes
        if size > limit:
            problem = TooLarge(
                f"{source}: its {column!r} cell is {size:,} bytes, over inputs.max_file_bytes "
                f"({limit:,}); raise the limit to send it"
            )
        elif options.skip_secrets and (reason := secret_by_content(candidate.path.name, text)):
            problem = secret_file(source, reason)
    return None if problem is None else _tagged(problem, source)


def _cell(value: Any, column: str, where: str) -> Any:
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


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, list | dict):
        return json.dumps(value, ensure_ascii=False, default=str)
    return str(value)


def _kept(value: Any) -> Any:
    return _text(value) if isinstance(value, list | dict) else value
