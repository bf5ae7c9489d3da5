"""Table inputs: each row of a CSV, TSV, JSONL or Parquet file is a document; bad rows are rows."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest

from pipeline.core.errors import ConfigError, EmptyFile, InputProblem, TooLarge, Unreadable
from pipeline.core.models import Document
from pipeline.readers import Candidate, InputOptions, tables
from pipeline.readers.options import TableOptions

TABLE = TableOptions(
    text_column="body",
    id_column="id",
    keep=(("tier", "tier"),),
    template_columns=("title",),
)
ROWS = [
    {"id": "a1", "title": "First", "body": "The first ticket.", "tier": "pro", "extra": 1},
    {"id": "a2", "title": "Second", "body": "The second ticket.", "tier": "basic", "extra": 2},
]


def options(path: Path, table: TableOptions = TABLE, **kwargs: object) -> InputOptions:
    return InputOptions(paths=(path,), table=table, **kwargs)  # type: ignore[arg-type]


def read(
    path: Path, table: TableOptions = TABLE, **kwargs: object
) -> list[Document | InputProblem]:
    return list(tables.rows(Candidate(path, path.name), options(path, table, **kwargs)))


def write_table(folder: Path, fmt: str, rows: list[dict[str, object]]) -> Path:
    frame = pl.DataFrame(rows)
    path = folder / f"t.{fmt}"
    if fmt == "parquet":
        frame.write_parquet(path, row_group_size=1)  # a row group a row: read in slices
    elif fmt == "csv":
        frame.write_csv(path)
    elif fmt == "tsv":
        frame.write_csv(path, separator="\t")
    else:
        path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


@pytest.mark.parametrize("fmt", ["csv", "tsv", "jsonl", "parquet"])
def test_every_format_gives_the_same_documents(tmp_path: Path, fmt: str) -> None:
    path = write_table(tmp_path, fmt, ROWS)
    documents = read(path)
    assert all(isinstance(d, Document) for d in documents)
    docs = [d for d in documents if isinstance(d, Document)]
    assert [d.source for d in docs] == [f"t.{fmt}#a1", f"t.{fmt}#a2"]
    assert [d.text for d in docs] == ["The first ticket.", "The second ticket."]
    assert [dict(d.fields) for d in docs] == [{"title": "First"}, {"title": "Second"}]
    assert [dict(d.kept) for d in docs] == [{"tier": "pro"}, {"tier": "basic"}]
    assert len({d.content_hash for d in docs}) == 2


def test_content_hash_ignores_unused_columns_and_follows_used_ones(tmp_path: Path) -> None:
    first = read(write_table(tmp_path, "parquet", ROWS))
    changed = [dict(ROWS[0], extra=99), dict(ROWS[1], title="Second, edited")]
    (tmp_path / "t.parquet").unlink()
    second = read(write_table(tmp_path, "parquet", changed))
    assert isinstance(first[0], Document)
    assert isinstance(second[0], Document)
    assert first[0].doc_id == second[0].doc_id  # only an unused column changed
    assert first[1].doc_id != second[1].doc_id  # {title} is in the template


def test_without_id_column_the_id_is_the_content_hash(tmp_path: Path) -> None:
    table = TableOptions(text_column="body")
    docs = read(write_table(tmp_path, "csv", ROWS), table)
    assert isinstance(docs[0], Document)
    assert docs[0].source == f"t.csv#{docs[0].content_hash[:16]}"


def test_bad_rows_are_rows_and_the_table_goes_on(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_bytes(
        b"id,title,body,tier\n"
        b"r1,ok,fine text,pro\n"
        b"r2,empty,,pro\n"
        b"r3,latin1,caf\xe9 au lait,pro\n"
        b",no id,some text,pro\n"
        b"r5,big," + b"x" * 200 + b",pro\n"
        b"r6,too,many,fields,here\n"
        b'r7,multi,"line one\nline two",basic\n'
    )
    items = read(path, max_file_bytes=100)
    by_source = {getattr(i, "source", None): i for i in items}
    assert isinstance(by_source["t.csv#r1"], Document)
    assert isinstance(by_source["t.csv#r2"], EmptyFile)
    assert by_source["t.csv#r2"].kept == {"tier": "pro"}
    assert isinstance(by_source["t.csv#line-4"], Unreadable)
    assert "'body' cell is not UTF-8" in str(by_source["t.csv#line-4"])
    assert isinstance(by_source["t.csv#line-5"], Unreadable)
    assert "inputs.id_column" in str(by_source["t.csv#line-5"])
    assert isinstance(by_source["t.csv#r5"], TooLarge)
    bad_line = [i for i in items if isinstance(i, Unreadable) and "fields" in str(i)]
    assert len(bad_line) == 1
    multi = by_source["t.csv#r7"]
    assert isinstance(multi, Document)
    assert multi.text == "line one\nline two"
    assert len(items) == 7


def test_bad_json_lines_are_error_rows(tmp_path: Path) -> None:
    path = tmp_path / "t.jsonl"
    path.write_text(
        json.dumps(ROWS[0]) + "\n{not json\n[1, 2]\n\n" + json.dumps(ROWS[1]) + "\n",
        encoding="utf-8",
    )
    items = read(path)
    assert [getattr(i, "source", None) for i in items] == [
        "t.jsonl#a1",
        "t.jsonl#line-2",
        "t.jsonl#line-3",
        "t.jsonl#a2",
    ]
    assert isinstance(items[1], Unreadable)
    assert "line 2 is not JSON" in str(items[1])


def test_a_file_that_is_not_a_table_is_skipped(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("hello", encoding="utf-8")
    (item,) = read(path)
    assert isinstance(item, InputProblem)
    assert "not a table" in str(item)


def test_check_names_the_columns_there_are(tmp_path: Path) -> None:
    path = write_table(tmp_path, "parquet", ROWS)
    table = TableOptions(text_column="body", template_columns=("customer",))
    with pytest.raises(ConfigError) as caught:
        tables.check([Candidate(path, "t.parquet")], table)
    message = str(caught.value)
    assert message.startswith("prompt.template: t.parquet has no column 'customer'")
    assert "id, title, body, tier, extra" in message


def test_check_gives_the_kept_columns_types(tmp_path: Path) -> None:
    path = write_table(tmp_path, "parquet", ROWS)
    table = TableOptions(text_column="body", keep=(("extra", "extra"), ("tier", "tier")))
    assert tables.check([Candidate(path, "t.parquet")], table) == {
        "extra": pl.Int64,
        "tier": pl.String,
    }
