"""The report's page for a big night: how large the file is, how long it takes to draw.

Run:  python -m bench.page_size                 (100,000 documents, an 8-hour night)
      python -m bench.page_size --documents 1000

Writes a synthetic run's files (results and calls Parquet, the JSON report, a state with 30
earlier nights) in a temporary folder, then times ``pipeline.output.page.write_for`` on them, as
``pipeline report OUTPUT.parquet --html`` does. The night: 92% ok, 5% errors of six kinds,
3% skipped; one call per document plus retries (3% answered 429, 2% failed otherwise), sent
evenly over ``--hours``; a structured column with four severities.
"""

from __future__ import annotations

import argparse
import random
import shutil
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bench.table import row, separator
from pipeline.core.limits import TIERS
from pipeline.output import page, report
from pipeline.output.report import RunInfo, Tally
from pipeline.output.sink import CALL_SCHEMA, DOC_SCHEMA, write_parquet
from pipeline.state.store import ResultStore

ERRORS = (
    (
        "unreadable",
        "{} is not a readable PDF (EOF marker not found): it may be truncated; re-export it",
    ),
    ("encrypted_document", "{} is encrypted and needs a password; save a copy without it"),
    ("retries_exhausted", "{}: overloaded 12 times over 41 minutes; run again later"),
    ("invalid_request", "{}: messages.0.content: text is empty; check the template"),
    ("request_too_large", "{}: the request is over 32 MB; split the file"),
    ("empty_document", '{} has no text (a scan?); set inputs.mode = "attach"'),
)


def night(
    documents: int, hours: float, seed: int
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    rng = random.Random(seed)
    start = datetime(2026, 12, 1, 1, 30, tzinfo=UTC)
    rows: list[dict[str, Any]] = []
    calls: list[dict[str, Any]] = []
    for n in range(documents):
        source = f"inbox/{n // 1000:03d}/document-{n:06d}.pdf"
        at = start + timedelta(seconds=hours * 3600 * n / documents)
        draw = rng.random()
        status = "ok" if draw < 0.92 else "error" if draw < 0.97 else "skipped"
        kind, message = rng.choice(ERRORS) if status == "error" else (None, None)
        if status == "skipped":
            kind, message = "empty_file", "{} is empty; nothing to send"
        attempts = 1 + (rng.random() < 0.05)
        for attempt in range(1, attempts + 1):
            answered = attempt == attempts
            limited = not answered and rng.random() < 0.6
            calls.append(
                {
                    "doc_id": f"d{n}",
                    "call": "whole",
                    "attempt": attempt,
                    "status": 200 if answered else 429 if limited else 529,
                    "error_type": None if answered else "rate_limited" if limited else "overloaded",
                    "latency_s": rng.lognormvariate(1.0, 0.5),
                    "started_at": at + timedelta(seconds=attempt * 2),
                    "input_tokens": rng.randint(500, 9000) if answered else None,
                    "output_tokens": rng.randint(50, 600) if answered else None,
                }
            )
        rows.append(
            {
                "doc_id": f"d{n}",
                "source": source,
                "status": status,
                "text": "A summary of the document. " * 20 if status == "ok" else None,
                "model": "claude-haiku-4-5",
                "input_tokens": rng.randint(500, 9000),
                "output_tokens": rng.randint(50, 600),
                "cost_usd": rng.random() / 100,
                "attempts": attempts,
                "latency_s": rng.lognormvariate(1.0, 0.5),
                "error_type": kind,
                "error_message": message.format(source) if message else None,
                "severity": rng.choice(("low", "medium", "high", "critical")),
            }
        )
    return rows, calls


def summary(output: Path, documents: int, hours: float, when: datetime) -> dict[str, Any]:
    tally = Tally(clock=lambda: 0.0, started_at=when.timestamp())
    tally.documents.update(ok=int(documents * 0.92), error=documents // 20, skipped=documents // 33)
    tally.calls = tally.attempts = documents
    tally.latencies = [2.0, 3.0, 9.0]
    info = RunInfo(
        "nightly",
        "claude-haiku-4-5",
        "https://ai.megallm.io",
        output,
        TIERS["pro"],
        None,
        "completed",
    )
    built = report.build(tally, info, now=when.timestamp() + hours * 3600)
    built["wall_s"] = hours * 3600
    return built


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--documents", type=int, default=100_000)
    parser.add_argument("--hours", type=float, default=8.0)
    parser.add_argument("--keep", type=Path, help="copy the page here, to look at it")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        output = Path(folder) / "night.parquet"
        rows, calls = night(args.documents, args.hours, seed=1)
        write_parquet(rows, output, {**DOC_SCHEMA, "severity": DOC_SCHEMA["status"]})
        write_parquet(calls, output.with_name("night.calls.parquet"), CALL_SCHEMA)
        state = ResultStore(output.with_name("night.state.sqlite"))
        first = datetime(2026, 11, 1, 1, 30, tzinfo=UTC)
        for day in range(31):
            state.record_run(
                summary(output, args.documents, args.hours, first + timedelta(days=day))
            )
        state.close()
        tonight = summary(
            output, args.documents, args.hours, datetime(2026, 12, 1, 1, 30, tzinfo=UTC)
        )
        report.write(tonight, output)
        began = time.perf_counter()
        written = page.write_for(tonight, output)
        took = time.perf_counter() - began
        if args.keep:
            shutil.copy(written, args.keep)
        header = "| documents | attempts | page | render |"
        print(header)
        print(separator(header))
        size = written.stat().st_size
        print(
            row(
                [
                    f"{args.documents:,}",
                    f"{len(calls):,}",
                    f"{size / 1024:,.0f} KB",
                    f"{took:.1f} s",
                ]
            )
        )


if __name__ == "__main__":
    main()
