"""What the page shows, gathered from the run's own files and reduced to small tables.

Everything is aggregated here, before any chart is drawn, so the page stays the same
size whether the run had 100 documents or 100,000: curves are sampled at a few hundred
moments, marks are counted per sample, lists of documents are cut to their first few.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import polars as pl

from pipeline.output.page.timeline import Timeline, attempts_over_time
from pipeline.output.sink import CALL_SCHEMA, DOC_SCHEMA

TOP = 10  # documents in the "most expensive" and "slowest" tables, rows of structured output
AFFECTED = 30  # source paths listed under each problem
MAX_CATEGORIES = 12  # a column with more distinct values is not a category
CELL = 200  # characters of a value shown in a table


@dataclass(frozen=True)
class Problem:
    """Documents that ended with one error type (or skipped for one reason)."""

    kind: str
    count: int
    example: str
    fix: str
    sources: list[str]  # the first AFFECTED of them


@dataclass(frozen=True)
class Table:
    columns: list[str]
    rows: list[list[str]]


@dataclass(frozen=True)
class Category:
    """How the values of one categorical column (or field of a list of records) fall."""

    column: str
    counts: list[tuple[str, int]]


@dataclass(frozen=True)
class PageData:
    report: dict[str, Any]
    timeline: Timeline | None
    latencies: list[float]  # answered attempts' latencies, for the histogram
    cost_by_model: list[tuple[str, int, float]]  # model, documents, USD
    expensive: Table
    slowest: Table
    problems: list[Problem]
    skipped: list[Problem]
    categories: list[Category]
    first_rows: Table | None
    runs: list[dict[str, Any]]


def gather(
    report: dict[str, Any], results: Path, calls: Path, runs: list[dict[str, Any]]
) -> PageData:
    rows = _read(results, DOC_SCHEMA, ROW_COLUMNS)
    attempts = _read(calls, CALL_SCHEMA, CALL_COLUMNS)
    start = datetime.fromisoformat(report["started_at"]).timestamp()
    # The calls file also holds the calls of documents reused from earlier runs: only
    # this run's attempts are drawn.
    times = (attempts["started_at"].dt.epoch("us") / 1e6 - start).alias("t")
    mine = attempts.with_columns(times).filter(pl.col("t") >= -1.0).sort("t")
    # Time is drawn from the first request (the report's start is to the second only).
    first: float = mine["t"][0] if len(mine) else 0.0
    mine = mine.with_columns(pl.col("t") - first)
    answered = mine.filter(pl.col("error_type").is_null())
    sent = rows.filter(pl.col("attempts").fill_null(0) > 0)
    return PageData(
        report=report,
        timeline=attempts_over_time(mine, float(report["wall_s"]) - first) if len(mine) else None,
        latencies=answered["latency_s"].drop_nulls().to_list(),
        cost_by_model=_cost_by_model(sent),
        expensive=_top(sent, "cost_usd"),
        slowest=_top(sent, "latency_s"),
        problems=_problems(rows.filter(pl.col("status") == "error")),
        skipped=_problems(rows.filter(pl.col("status") == "skipped")),
        categories=_categories(rows),
        first_rows=_first_rows(rows),
        runs=runs,
    )


# The standard columns the page uses (and every column a job adds): only they are read, so
# a night of long answers, or of 100,000 documents, stays out of memory.
ROW_COLUMNS = frozenset(
    {"source", "status", "attempts", "model", "cost_usd", "latency_s", "input_tokens"}
    | {"output_tokens", "error_type", "error_message"}
)
CALL_COLUMNS = frozenset(
    {"started_at", "attempt", "status", "error_type", "latency_s", "input_tokens", "output_tokens"}
)


def _read(path: Path, schema: dict[str, Any], used: frozenset[str]) -> pl.DataFrame:
    if not path.exists():
        return pl.DataFrame(schema={k: v for k, v in schema.items() if k in used})
    columns = [name for name in pl.read_parquet_schema(path) if name in used or name not in schema]
    return pl.read_parquet(path, columns=columns)


def _cost_by_model(sent: pl.DataFrame) -> list[tuple[str, int, float]]:
    grouped = (
        sent.group_by(pl.col("model").fill_null("(none)"))
        .agg(pl.len().alias("n"), pl.col("cost_usd").fill_null(0).sum().alias("cost"))
        .sort("cost", "model", descending=[True, False])
    )
    return [(str(m), int(n), float(c)) for m, n, c in grouped.iter_rows()]


def _top(sent: pl.DataFrame, column: str) -> Table:
    present = sent.filter(pl.col(column).is_not_null())
    # The rows of the TOP largest, in the order a sort of the whole frame gives them (ties
    # too), without sorting every column of it.
    top = present[present[column].arg_sort(descending=True).head(TOP)]
    return Table(
        ["document", "cost (USD)", "latency (s)", "tokens in / out", "attempts"],
        [
            [
                str(row["source"]),
                _usd(row["cost_usd"]),
                f"{row['latency_s'] or 0:,.2f}",
                f"{row['input_tokens'] or 0:,} / {row['output_tokens'] or 0:,}",
                f"{row['attempts'] or 0:,}",
            ]
            for row in top.iter_rows(named=True)
        ],
    )


def _problems(rows: pl.DataFrame) -> list[Problem]:
    kinds = rows.group_by(pl.col("error_type").fill_null("unknown")).agg(
        pl.len().alias("n"),
        pl.col("error_message").drop_nulls().first().alias("example"),
        pl.col("source").sort().head(AFFECTED).alias("sources"),
    )
    ordered = kinds.sort("n", "error_type", descending=[True, False])
    return [
        Problem(str(kind), int(count), str(example or ""), fix_of(str(example or "")), sources)
        for kind, count, example, sources in ordered.iter_rows()
    ]


def fix_of(message: str) -> str:
    """The fix a message gives: by the project's convention, what follows its last colon
    or semicolon (``broken.pdf is not a readable PDF (...): it may be truncated ...``)."""
    cut = max(message.rfind(": "), message.rfind("; "))
    return message[cut + 2 :].strip() if cut >= 0 else ""


def _structured(rows: pl.DataFrame) -> list[str]:
    return [name for name in rows.columns if name not in DOC_SCHEMA]


def _categories(rows: pl.DataFrame) -> list[Category]:
    found: list[Category] = []
    for name in _structured(rows):
        column = rows[name]
        if isinstance(column.dtype, pl.List) and isinstance(column.dtype.inner, pl.Struct):
            records = column.explode().drop_nulls().struct.unnest()
            for field in records.columns:
                found.extend(_category(f"{name}.{field}", records[field]))
        else:
            found.extend(_category(name, column))
    return found


def _category(name: str, values: pl.Series) -> list[Category]:
    if values.dtype not in (pl.String, pl.Boolean, pl.Int64):
        return []
    present = values.drop_nulls()
    distinct = present.n_unique()
    # A category repeats: few distinct values, each seen more than once on average.
    if not present.len() or distinct > MAX_CATEGORIES or distinct * 2 > present.len():
        return []
    counts = present.cast(pl.String).value_counts(sort=True)
    return [Category(name, [(str(v), int(n)) for v, n in counts.iter_rows()])]


def _first_rows(rows: pl.DataFrame) -> Table | None:
    names = _structured(rows)
    if not names:
        return None
    shown = rows.filter(pl.col("status") == "ok").head(TOP)
    return Table(
        ["document", *names],
        [
            [str(row["source"]), *(_cell(row[name]) for name in names)]
            for row in shown.iter_rows(named=True)
        ],
    )


def _cell(value: Any) -> str:
    if value is None:
        text = ""
    elif isinstance(value, list | dict):
        text = json.dumps(value, ensure_ascii=False, default=str)
    else:
        text = str(value)
    return text if len(text) <= CELL else text[: CELL - 1] + "\u2026"


def _usd(value: float | None) -> str:
    return "" if value is None else f"${value:,.4f}"
