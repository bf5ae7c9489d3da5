"""What a QA pass found in table inputs: cells that are not text, CSV lines that vanished,
duplicate ids; each bad line is a row that names its line."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl

from pipeline.core.errors import InputProblem, Skipped, Unreadable
from pipeline.core.models import Document
from pipeline.readers.options import TableOptions
from tests.tables.test_rows import TABLE, read

NUMBERS = TableOptions(
    text_column="body", id_column="id", keep=(("tier", "tier"),), template_columns=("title",)
)


def sources(items: list[Document | InputProblem]) -> list[str | None]:
    return [getattr(i, "source", None) for i in items]


def test_cells_that_are_not_text_become_text(tmp_path: Path) -> None:
    path = tmp_path / "t.parquet"
    frame = {"id": [7, 8], "title": [True, False], "body": [123, 4], "tier": [1, 2]}
    pl.DataFrame(frame).write_parquet(path)
    docs = read(path, NUMBERS)
    assert all(isinstance(d, Document) for d in docs)
    assert [d.source for d in docs if isinstance(d, Document)] == ["t.parquet#7", "t.parquet#8"]
    first = docs[0]
    assert isinstance(first, Document)
    assert first.text == "123"
    assert dict(first.fields) == {"title": "true"}
    assert dict(first.kept) == {"tier": 1}  # kept columns keep their type


def test_json_cells_of_any_kind_become_text(tmp_path: Path) -> None:
    path = tmp_path / "t.jsonl"
    lines = [
        {"id": 1, "title": 2.5, "body": 123, "tier": None},
        {"id": "b", "title": ["x", "y"], "body": {"q": "café"}, "tier": [1]},
        {"id": "c", "title": "t", "body": False, "tier": "pro"},
    ]
    path.write_text("".join(json.dumps(line) + "\n" for line in lines), encoding="utf-8")
    docs = read(path, NUMBERS)
    assert [d.text for d in docs if isinstance(d, Document)] == ["123", '{"q": "café"}', "false"]
    assert [dict(d.fields) for d in docs if isinstance(d, Document)] == [
        {"title": "2.5"},
        {"title": '["x", "y"]'},
        {"title": "t"},
    ]


def test_csv_lines_with_the_wrong_field_count_are_rows_with_their_line(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_text("id,title,body,tier\nW1,a,b\nW2,a,b\n", encoding="utf-8")
    items = read(path)
    assert sources(items) == ["t.csv#line-2", "t.csv#line-3"]
    assert all(isinstance(i, Unreadable) for i in items)
    assert "line 2 has 3 fields where the header has 4" in str(items[0])


def test_a_bad_line_is_reported_where_it_is(tmp_path: Path) -> None:
    body = "".join(f"r{n},t,text {n},pro\n" for n in range(1, 3000))
    path = tmp_path / "t.csv"
    path.write_text("id,title,body,tier\n" + body + "bad,line\nlast,t,x,pro\n", encoding="utf-8")
    items = read(path)
    assert len(items) == 3001
    assert sources(items)[-2:] == ["t.csv#line-3001", "t.csv#last"]


def test_an_unterminated_quote_names_the_lines_it_left_unread(tmp_path: Path) -> None:
    rows = [f"r{n},t,text {n},pro" for n in range(1, 41)]
    rows[20] = 'r21,t,"text 21 with a quote never closed,pro'
    path = tmp_path / "t.csv"
    path.write_text("id,title,body,tier\n" + "\n".join(rows) + "\n", encoding="utf-8")
    items = read(path)
    docs = [i for i in items if isinstance(i, Document)]
    assert len(docs) == 20
    (problem,) = [i for i in items if isinstance(i, InputProblem)]
    assert isinstance(problem, Unreadable)
    assert getattr(problem, "source", None) == "t.csv#line-22"
    message = str(problem)
    assert "line 22" in message
    assert "quote" in message
    assert "20 lines (22 to 41)" in message


def test_a_quoted_cell_over_several_lines_keeps_the_numbering(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_bytes(b'id,title,body,tier\nr1,t,"one\ntwo\nthree",pro\nr2,x\nr3,t,ok,pro\n')
    items = read(path)
    assert sources(items) == ["t.csv#r1", "t.csv#line-5", "t.csv#r3"]


def test_a_duplicate_id_is_an_error_row_naming_the_first(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_text(
        "id,title,body,tier\na1,t,first,pro\na2,t,other,pro\na1,t,changed,pro\na1,t,first,pro\n",
        encoding="utf-8",
    )
    items = read(path)
    assert sources(items) == ["t.csv#a1", "t.csv#a2", "t.csv#line-4", "t.csv#line-5"]
    for item in items[2:]:
        assert isinstance(item, Unreadable)
        assert "duplicate id 'a1', first at line 2" in str(item)


def test_without_id_column_a_repeated_row_is_skipped_naming_the_first(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_text("id,title,body,tier\na1,t,same,pro\na1,t,same,pro\n", encoding="utf-8")
    items = read(path, TableOptions(text_column="body"))
    assert isinstance(items[0], Document)
    assert isinstance(items[1], Skipped)
    assert getattr(items[1], "source", None) == "t.csv#line-3"
    assert "the same content as line 2" in str(items[1])


def test_parquet_rows_are_numbered_as_rows(tmp_path: Path) -> None:
    path = tmp_path / "t.parquet"
    frame = {"id": ["a", "a"], "title": ["t", "t"], "body": ["x", "y"], "tier": ["p", "p"]}
    pl.DataFrame(frame).write_parquet(path)
    items = read(path, TABLE)
    assert sources(items) == ["t.parquet#a", "t.parquet#row-2"]
    assert "first at row 1" in str(items[1])
