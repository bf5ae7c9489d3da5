"""Rows of tables as documents: CSV, TSV, JSONL/NDJSON and Parquet, read a slice at a time.

With ``inputs.text_column`` set, each such file among the inputs is a table and each of its
rows a document (any other file is a ``skipped`` row that says so):

- text: the ``text_column`` cell as text (``_text``: numbers in decimal, true/false, lists and
  objects as JSON); id: the ``id_column`` cell, else the first 16 hex digits of the row's
  content hash; ``source``: ``TABLE#ID``, TABLE as ``table_label`` names it;
- content hash: SHA-256 of the columns the job uses (text, id, the templates' columns,
  ``keep_columns``); ``doc_id`` (the key of a finished row) comes from the id and the content
  hash, not from the table's name or place, so a re-run, or tomorrow's export under another
  name, sends a row again only when one of those changed;
- ``fields``: the templates' columns as text; ``kept``: ``keep_columns``, by output name.

Reading (``table_records``) never holds a table whole; a local file and an object in a bucket
(ranged reads through fsspec, ``readers.remote``) go through the same code.

Bad rows are rows, and the table goes on: a blank text, one over ``inputs.max_file_bytes`` or
one holding credentials is ``skipped``; a cell that is not UTF-8, an empty id, a line that is
not a row (not a JSON object; the wrong number of CSV fields; a CSV quote never closed, which
ends the table) or an id seen before in the table is an ``error`` (Unreadable); a row with the
same content as one before it (no ``id_column``) is ``skipped``. Their source is ``TABLE#ID``,
else ``TABLE#line-N`` (the line where the row starts in the file, from 1) or, for Parquet,
``TABLE#row-N`` (the N-th row, from 1).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import stat
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import IO, Any

import polars as pl
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from pipeline.core.errors import ConfigError, EmptyFile, InputProblem, Skipped, TooLarge, Unreadable
from pipeline.core.models import Document, Section
from pipeline.core.sensitive import secret_by_content
from pipeline.readers import remote
from pipeline.readers.discover import printable
from pipeline.readers.formats import TABLES, suffix_of
from pipeline.readers.options import Candidate, InputOptions, TableOptions
from pipeline.readers.read import _OPEN_FLAGS, document_id, secret_file
from pipeline.readers.table_records import Record, cell, records, text_of

FORMATS = {
    ".csv": "csv",
    ".tsv": "tsv",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".parquet": "parquet",
}
assert set(FORMATS) == TABLES
SUFFIXES = ", ".join(FORMATS)
_CSV_BLOCK = 1 << 20
_BUILT_IN = "a built-in placeholder"


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
            reader = pacsv.open_csv(file, **_csv_options(fmt))
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


def rows(
    candidate: Candidate, options: InputOptions, issued: set[str] | None = None
) -> Iterator[Document | InputProblem]:
    """Each row of a table as a Document, or an InputProblem (``source`` set) for a bad row;
    an unreadable table is one problem row, after the rows read before the fault.

    ``issued``: the ``doc_id``s the run's tables gave so far (two tables may hold the same
    row: the second's id then names its table, so ``doc_id`` stays unique in a run)."""
    table = options.table
    assert table is not None
    label = table_label(candidate)
    fmt = table_format(candidate.path.name)
    if fmt is None:
        yield _tagged(
            Skipped(
                f"{label} is not a table ({SUFFIXES}) and inputs.text_column makes the rows "
                "of tables the documents; leave it out with inputs.exclude"
            ),
            candidate.source,
        )
        return
    unit = "row" if fmt == "parquet" else "line"
    reading = _Reading(candidate, label, unit, options, set() if issued is None else issued)
    number = 0
    try:
        with _opened(candidate) as file:
            for number, record in records(fmt, file, table.columns):
                yield reading.row(number, record)
    except InputProblem as problem:
        yield _tagged(problem, candidate.source)
    except (pa.ArrowException, ValueError, OSError) as exc:
        where = f"after {reading.unit} {number:,}" if number else "at its start"
        yield _tagged(
            Unreadable(f"{label} could not be read {where} ({exc}); fix the table"),
            f"{label}#{reading.unit}-{number + 1}",
        )


def table_label(candidate: Candidate) -> str:
    """The table as its rows' ``source`` names it: its path relative to the input folder (as
    a file's ``source``), or, for a table named as a file, its file name, so that the same
    export under another name or in another folder keeps its rows' ids readable."""
    if candidate.url is None and candidate.source == printable(str(candidate.path)):
        return printable(candidate.path.name)
    return candidate.source


def _tagged(problem: InputProblem, source: str) -> InputProblem:
    problem.source = source
    return problem


def _csv_options(fmt: str | None) -> dict[str, Any]:
    """pyarrow's CSV reader, for the header only (``columns_of``)."""
    return {
        "read_options": pacsv.ReadOptions(block_size=_CSV_BLOCK, use_threads=False),
        "parse_options": pacsv.ParseOptions(
            delimiter="\t" if fmt == "tsv" else ",",
            newlines_in_values=True,
            invalid_row_handler=lambda _row: "skip",
        ),
    }


@dataclass
class _Reading:
    """One table being read: its rows made documents, each id remembered with where it was
    first, so that a later row with the same id is a row that says so."""

    candidate: Candidate
    label: str  # table_label
    unit: str  # "line" (CSV, TSV, JSONL) or "row" (Parquet)
    options: InputOptions
    issued: set[str]  # rows(): the run's doc_ids so far
    first: dict[str, int] = dataclasses.field(default_factory=dict)  # id: where first seen

    @property
    def table(self) -> TableOptions:
        assert self.options.table is not None
        return self.options.table

    def row(self, number: int, record: Record) -> Document | InputProblem:
        where = f"{self.label}#{self.unit}-{number}"
        if isinstance(record, InputProblem):
            if not record.message.startswith(f"line {number}"):
                record.message = f"{self.unit} {number:,}: {record.message}"
            record.message = f"{self.label}: {record.message}"
            record.args = (record.message,)
            return _tagged(record, where)
        try:
            values = {c: cell(record.get(c), c, where) for c in self.table.columns}
        except Unreadable as bad_cell:
            return _tagged(bad_cell, where)
        encoded = json.dumps(
            [[column, values[column]] for column in self.table.columns],
            ensure_ascii=False,
            default=str,
        )
        content_hash = hashlib.sha256(encoded.encode("utf-8", "surrogatepass")).hexdigest()
        row_id = content_hash[:16]
        if self.table.id_column is not None:
            row_id = text_of(values[self.table.id_column])
            if not row_id.strip():
                return _tagged(
                    Unreadable(
                        f"{where}: its {self.table.id_column!r} cell (inputs.id_column) is "
                        "empty; give every row an id, or leave inputs.id_column unset to key "
                        "rows by their content"
                    ),
                    where,
                )
        repeated = self._repeated(row_id, number, where)
        if repeated is not None:
            return repeated
        return self._document(row_id, values, content_hash)

    def _repeated(self, row_id: str, number: int, where: str) -> InputProblem | None:
        first = self.first.setdefault(row_id, number)
        if first == number:
            return None
        at = f"first at {self.unit} {first:,}"
        if self.table.id_column is None:
            return _tagged(
                Skipped(
                    f"{where}: the same content as {self.unit} {first:,} (the columns the "
                    "job uses), which is sent; a row is sent once"
                ),
                where,
            )
        return _tagged(
            Unreadable(
                f"{where}: duplicate id {row_id!r}, {at}; ids (inputs.id_column) must be "
                "unique in a table, so this row is not sent: fix the export, or leave "
                "inputs.id_column unset to key rows by their content"
            ),
            where,
        )

    def _document(
        self, row_id: str, values: dict[str, Any], content_hash: str
    ) -> Document | InputProblem:
        table = self.table
        source = f"{self.label}#{row_id}"
        kept = {out: _kept(values[column]) for column, out in table.keep}
        text = text_of(values[table.text_column])
        problem = _unsendable(self.candidate, source, text, self.options)
        if problem is not None:
            problem.kept = kept
            return problem
        # Keyed by the id and the content, not by the table's name or place: a nightly
        # export under a new name sends only its changed rows.
        doc_id = document_id(f"#{row_id}", content_hash)
        if doc_id in self.issued:  # the same row in another table of this run
            doc_id = document_id(f"{self.candidate.source}#{row_id}", content_hash)
        self.issued.add(doc_id)
        return Document(
            doc_id=doc_id,
            source=source,
            path=self.candidate.path,
            kind="text",
            content_hash=content_hash,
            size_bytes=len(text.encode("utf-8", "surrogatepass")),
            sections=(Section(text),),
            fields={column: text_of(values[column]) for column in table.template_columns},
            kept=kept,
        )


def _unsendable(
    candidate: Candidate, source: str, text: str, options: InputOptions
) -> InputProblem | None:
    """Why this row's text cannot be sent (a skipped row), or None."""
    assert options.table is not None
    column = options.table.text_column
    problem: InputProblem | None = None
    if not text.strip():
        problem = EmptyFile(f"{source}: its {column!r} cell is empty: there is nothing to send")
    else:
        size = len(text.encode("utf-8", "surrogatepass"))
        limit = options.max_file_bytes
        if size > limit:
            problem = TooLarge(
                f"{source}: its {column!r} cell is {size:,} bytes, over inputs.max_file_bytes "
                f"({limit:,}); raise the limit to send it"
            )
        elif options.skip_secrets and (reason := secret_by_content(candidate.path.name, text)):
            problem = secret_file(source, reason)
    return None if problem is None else _tagged(problem, source)


def _kept(value: Any) -> Any:
    return text_of(value) if isinstance(value, list | dict) else value
