"""The end of a run, however it ended: the Parquet files, the report (text, JSON, page), the
upload to storage; what finished is written, and nothing an earlier run wrote is lost."""

from __future__ import annotations

import ctypes
import json
import logging
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipeline.config.paths import page_path, report_path
from pipeline.config.spec import Job
from pipeline.core import logs
from pipeline.core.rows import CALL_COLUMNS, DOCUMENT_COLUMNS, DocumentRow
from pipeline.engine.base import RunTotals
from pipeline.output import report
from pipeline.output.report import RunInfo, Tally
from pipeline.readers import remote
from pipeline.run.record import Rows
from pipeline.state.store import ResultStore

log = logging.getLogger("pipeline.run")


@dataclass
class RunOutcome:
    output: Path
    calls_output: Path
    rows: int
    by_status: dict[str, int]
    totals: RunTotals | None
    reused: int = 0  # documents finished by an earlier run, not sent again
    ended: str = "completed"  # or interrupted / max_duration / budget / fatal: a re-run resumes
    report: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Ending:
    """How the run ended, and what it did: what the report says."""

    ended: str
    fatal_error: str | None
    totals: RunTotals | None
    reused: int
    base_url: str


def write(job: Job, store: ResultStore, tally: Tally, rows: Rows, ending: Ending) -> RunOutcome:
    by_status: Counter[str] = Counter()
    keep = _keeps_earlier_output(job, store, ending.ended)
    written = 0
    if not keep:
        written = _write_files(job, store, rows, by_status)
    summary = report.build(tally, _info(job, ending))
    store.record_run(summary)
    # How the night ended, for whoever reads the --log-file (the console shows the report).
    log.info(
        "the run ended: %s\n%s",
        ending.ended,
        report.render(summary),
        extra={"event": "ended", "ended": ending.ended, logs.FILE_ONLY: True},
    )
    if not keep:
        report.write(summary, job.output_path)
        if job.spec.output.html_report:
            release_memory()
            _write_page(job, summary)
        if job.output_url is not None:
            _publish(job, job.output_url)
    return RunOutcome(
        job.output_path,
        job.calls_path,
        written,
        dict(by_status),
        ending.totals,
        ending.reused,
        ending.ended,
        summary,
    )


def release_memory() -> None:
    """Give the memory the C allocator holds free back to the system (glibc's
    ``malloc_trim``): the run's worker threads each leave an arena of freed blocks, which
    would otherwise sit under the Parquet write and the page. Elsewhere, nothing."""
    try:
        libc = ctypes.CDLL(None)
        trim = libc.malloc_trim
    except (OSError, AttributeError):
        return
    trim(0)


def _write_files(job: Job, store: ResultStore, rows: Rows, by_status: Counter[str]) -> int:
    """The Parquet files, from the state; the rows written, counted by status. A run whose
    output is what the files already hold (a re-run that changed nothing: the same finished
    documents under the same names, no errors, the same columns) leaves them as they are."""
    files = (job.output_path, job.calls_path)
    schema = {
        "documents": DOCUMENT_COLUMNS,
        "calls": CALL_COLUMNS,
        "structured": rows.structured_columns,
        "kept": {name: str(dtype) for name, dtype in rows.kept_columns.items()},
    }
    digest = store.output_digest(json.dumps(schema, sort_keys=True, default=str))
    if digest is not None and (unchanged := store.written(files, digest)) is not None:
        by_status.update(unchanged)
        return sum(unchanged.values())
    release_memory()  # what the run freed goes back before the files and the page are made
    from pipeline.output import sink  # polars: loaded when the files are written

    def counted(found: Iterator[DocumentRow]) -> Iterator[DocumentRow]:
        for row in found:
            by_status[row.status] += 1
            yield row

    structured = {c: sink.dtype_for(s) for c, s in rows.structured_columns.items()}
    extra = {**structured, **rows.kept_columns}
    written = sink.write_rows(counted(store.output_rows()), job.output_path, extra)
    sink.write_calls(store.output_calls(), job.calls_path)
    if digest is not None:
        store.record_written(files, digest, dict(by_status))
    return written


def _info(job: Job, ending: Ending) -> RunInfo:
    return RunInfo(
        job=job.name,
        model=job.spec.model.name,
        base_url=ending.base_url,
        output=job.output_path,
        limits=job.limits,
        price=job.price,
        batch=job.batch,
        price_basis=job.price_basis,
        ended=ending.ended,
        fatal_error=ending.fatal_error,
    )


def _write_page(job: Job, summary: dict[str, Any]) -> None:
    """The report as a page, beside the JSON. The results and the JSON are written
    already: a page that cannot be drawn is a warning, never a lost night."""
    from pipeline.output import (
        page,  # Jinja2 and the charts: loaded only when a page is written
    )

    try:
        page.write(summary, job.output_path, job.calls_path, job.state_path)
    except Exception as exc:  # any fault in drawing the page must not fail the run
        log.warning("could not write the report's page beside %s: %s", job.output_path, exc)


def _keeps_earlier_output(job: Job, store: ResultStore, ended: str) -> bool:
    """A run stopped before it reached a single document (a refused key, a signal at
    once) has nothing to say: an earlier run's output, report and page stay as they
    were, rather than be replaced by empty ones."""
    return (
        ended != "completed"
        and job.output_path.exists()
        and next(store.output_rows(), None) is None
    )


def _publish(job: Job, url: str) -> None:
    """Upload the files written locally to ``url`` and beside it: calls and report first,
    the results last, each replacing what was there whole (``readers.remote``)."""
    out = job.output_path
    page = page_path(out)
    first = (job.calls_path, report_path(out), *([page] if page.exists() else []))
    for local in (*first, out):
        remote.publish(local, url if local == out else remote.sibling(url, local.name))
