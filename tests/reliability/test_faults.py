"""The fault matrix: whole runs of a job (``run_job``, real HTTP) against the simulator, one
kind of fault at a time and all at once, with retry waits on virtual time.

For each: every document ends as exactly one row (``ok``, or an error row that says what to
do when the retries ran out); no request is answered twice except where a reply was lost in
transit; no call makes more attempts than the policy allows; and the run's report counts
what the simulator says it injected.
"""

from __future__ import annotations

import functools
import json
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import polars as pl
import pytest

from pipeline.config.endpoint import ApiKey, Endpoint
from pipeline.config.load import load_job
from pipeline.config.paths import report_path
from pipeline.config.spec import Job
from pipeline.core.errors import HostUnreachable
from pipeline.run.runner import RunControl, RunOutcome, run_job
from pipeline.simulator import Faults, SimulatorConfig, SimulatorServer
from tests.conftest import TEST_MODELS, SkipClock, StartSimulator
from tests.test_interrupts import make_docs

ROOT = Path(__file__).resolve().parents[2]
JOB = ROOT / "jobs" / "summarize.toml"
DOCUMENTS = 30
MAX_ATTEMPTS = 8
READ_TIMEOUT_S = 1.0  # the client's, for slow replies; a normal reply takes milliseconds

# The error kind an attempt records for each fault the simulator injects.
SEEN_AS = {
    "overloaded": "overloaded",
    "api_error": "server_error",
    "drop": "broken_reply",
    "truncated": "broken_reply",
    "slow": "reply_timed_out",
    "stream_error": "overloaded",
    "rate_limited": "rate_limited",
}


def make_job(docs: Path, out: Path, *settings: str) -> Job:
    return load_job(
        JOB,
        inputs=[str(docs)],
        output=str(out),
        overrides=[f"retry.max_attempts={MAX_ATTEMPTS}", *settings],
    )


def run(server: SimulatorServer, job: Job, clock: SkipClock, **client: Any) -> RunOutcome:
    endpoint = Endpoint(server.url, ApiKey(server.api_key), key_source="$TEST_KEY")
    control = RunControl(clock=clock, sleep=clock.sleep)
    outcome: RunOutcome = anyio.run(functools.partial(run_job, job, endpoint, control, **client))
    return outcome


@dataclass
class Checked:
    rows: pl.DataFrame
    calls: pl.DataFrame
    report: dict[str, Any]
    stats: dict[str, Any]


def check(server: SimulatorServer, job: Job, docs: Path) -> Checked:
    """The invariants every run must keep, whatever the faults."""
    rows = pl.read_parquet(job.output_path)
    calls = pl.read_parquet(job.calls_path)
    report = json.loads(report_path(job.output_path).read_text(encoding="utf-8"))
    stats = server.stats()

    # Every document ends as exactly one row.
    assert sorted(rows["source"]) == sorted(p.name for p in docs.iterdir())

    # Answered twice only where a reply was lost in transit, and every reply that arrived
    # whole is in exactly one row.
    served, lost = stats["served"]["by_request"], stats["served"]["dropped_by_request"]
    assert all(served[d] - lost.get(d, 0) <= 1 for d in served), (served, lost)
    delivered = sorted(d[:12] for d in served if served[d] > lost.get(d, 0))
    ok = rows.filter(pl.col("status") == "ok")
    assert sorted(text.split()[1] for text in ok["text"]) == delivered

    # Retries stay within the policy: per call, and per document (one call each here).
    assert calls.group_by("doc_id", "call").agg(pl.col("attempt").max())["attempt"].max() <= (
        MAX_ATTEMPTS
    )
    assert (rows["attempts"] <= MAX_ATTEMPTS).all()
    assert rows["attempts"].sum() == len(calls)

    # The report tells what happened, as the simulator counted it.
    numbers = report["calls"]
    injected: Counter[str] = Counter()
    for kind, count in stats["faults"].items():
        injected[SEEN_AS[kind]] += count
    assert numbers["attempt_errors"] == dict(injected), stats["faults"]
    assert numbers["rate_limited_429"] == stats["by_status"].get("429", 0)
    assert numbers["retries"] == numbers["attempts"] - numbers["calls"]
    assert numbers["calls"] == DOCUMENTS
    # Every attempt reached the server (a slow one the client gave up on may still be held).
    assert numbers["attempts"] == stats["by_endpoint"]["messages"] + stats["in_flight"]
    recorded = Counter(calls["error_type"].drop_nulls().to_list())
    assert dict(recorded) == numbers["attempt_errors"]
    statuses = dict(rows["status"].value_counts().iter_rows())
    assert report["documents"]["by_status"] == statuses
    assert report["ended"] == "completed"
    return Checked(rows, calls, report, stats)


SCENARIOS = {
    "overloaded 529": (Faults(overloaded=0.3, seed=1), False),
    "500 api_error": (Faults(api_error=0.3, seed=2), False),
    "dropped connections": (Faults(drop=0.3, seed=3), False),
    "dropped mid-stream": (Faults(drop=0.3, seed=4), True),
    "slow past the read timeout": (Faults(slow=0.12, slow_seconds=60, seed=5), False),
    "slow, streamed": (Faults(slow=0.12, slow_seconds=60, seed=13), True),
    "truncated JSON body": (Faults(truncated=0.3, seed=7), False),
    "stream cut short, cleanly": (Faults(truncated=0.3, seed=8), True),
    "event: error mid-stream": (Faults(stream_error=0.3, seed=9), True),
    "429 storm with retry-after": (Faults(rate_limited=0.4, seed=10), False),
    "429 storm without retry-after": (
        Faults(rate_limited=0.4, rate_limited_retry_after=None, seed=11),
        False,
    ),
    "everything at once, streamed": (
        Faults(
            overloaded=0.05,
            api_error=0.05,
            drop=0.05,
            slow=0.03,
            stream_error=0.05,
            truncated=0.05,
            rate_limited=0.05,
            slow_seconds=60,
            seed=12,
        ),
        True,
    ),
}


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_fault_ends_as_one_ok_row_per_document(
    start_simulator: StartSimulator, tmp_path: Path, name: str
) -> None:
    faults, stream = SCENARIOS[name]
    server = start_simulator(SimulatorConfig(models=TEST_MODELS, faults=faults))
    docs = make_docs(tmp_path / "docs")
    job = make_job(docs, tmp_path / "out.parquet", f"endpoint.stream={str(stream).lower()}")
    run(server, job, SkipClock(), read_timeout_s=READ_TIMEOUT_S)
    checked = check(server, job, docs)
    assert set(checked.rows["status"]) == {"ok"}
    assert sum(checked.stats["faults"].values()) > 0, "no fault drawn: the case proved nothing"
    # Each fault cost exactly one retry: nothing else failed.
    assert checked.report["calls"]["retries"] == sum(checked.stats["faults"].values())


def test_429_storm_with_retry_after_0_is_not_hammered(
    start_simulator: StartSimulator, tmp_path: Path
) -> None:
    """``retry-after: 0`` is no guidance (the SDK ignores it too): the policy's backoff and
    the shared pause apply, instead of retrying at once into the storm."""
    faults = Faults(rate_limited=0.5, rate_limited_retry_after=0, seed=13)
    server = start_simulator(SimulatorConfig(models=TEST_MODELS, faults=faults))
    docs = make_docs(tmp_path / "docs")
    job = make_job(docs, tmp_path / "out.parquet")
    clock = SkipClock()
    run(server, job, clock)
    checked = check(server, job, docs)
    assert set(checked.rows["status"]) == {"ok"}
    refused = checked.stats["faults"]["rate_limited"]
    assert refused == checked.report["calls"]["rate_limited_429"] > 0
    assert len(clock.waits) >= refused  # every 429 was followed by a wait
    assert min(clock.waits) > 0


def test_retries_run_out_as_actionable_error_rows_then_a_rerun_finishes(
    start_simulator: StartSimulator, tmp_path: Path
) -> None:
    server = start_simulator(
        SimulatorConfig(models=TEST_MODELS, faults=Faults(api_error=0.7, seed=14))
    )
    docs = make_docs(tmp_path / "docs")
    out = tmp_path / "out.parquet"
    job = make_job(docs, out, "retry.max_attempts=2")
    run(server, job, SkipClock())
    rows = pl.read_parquet(out)
    failed = rows.filter(pl.col("status") == "error")
    assert 0 < len(failed) < DOCUMENTS
    assert set(rows["status"]) == {"ok", "error"}
    for row in failed.iter_rows(named=True):
        assert row["error_type"] == "retries_exhausted"
        assert row["attempts"] == 2
        assert row["error_message"].startswith(f"{row['source']}: Gave up after 2 attempts")
        assert "Run again later" in row["error_message"]
        assert len(row["request_ids"]) == 2  # what a provider's support asks for
    report = json.loads(report_path(out).read_text(encoding="utf-8"))
    assert report["documents"]["by_error_type"] == {"retries_exhausted": len(failed)}
    assert report["calls"]["attempt_errors"] == {
        "server_error": server.stats()["faults"]["api_error"]
    }

    # The server recovers: the same command sends the failed documents, and only those.
    healthy = start_simulator()
    rerun = make_job(docs, out, "retry.max_attempts=2")
    outcome = run(healthy, rerun, SkipClock())
    final = pl.read_parquet(out)
    assert sorted(final["source"]) == sorted(rows["source"])
    assert set(final["status"]) == {"ok"}
    assert outcome.reused == DOCUMENTS - len(failed)
    assert healthy.stats()["served"]["total"] == len(failed)


class Outage:
    """Stops the simulator at one virtual moment and starts it again (same port, same
    state) at another; ``back_at=None`` leaves it down."""

    def __init__(self, server: SimulatorServer, down_at: float, back_at: float | None) -> None:
        self.server, self.down_at, self.back_at = server, down_at, back_at
        self.state = "up"

    async def __call__(self, now: float) -> None:
        # Stopped and started on the event loop, blocking it: no other call runs between the
        # virtual moment and the server's change (a start in a worker thread let calls find
        # the port still closed after the outage had ended, and fail under a loaded machine).
        if self.state == "up" and now >= self.down_at:
            self.state = "down"
            self.server.stop()
        elif self.state == "down" and self.back_at is not None and now >= self.back_at:
            self.state = "back"
            self.server.start()


# Pacing at 10 requests a second puts the engine to sleep between requests, so the virtual
# clock moves and an outage can start part-way through the run.
PACED = "limits.requests_per_minute=600"


def test_server_away_for_a_minute_then_back(
    start_simulator: StartSimulator, tmp_path: Path
) -> None:
    server = start_simulator()
    url = server.url
    docs = make_docs(tmp_path / "docs")
    job = make_job(docs, tmp_path / "out.parquet", PACED)
    outage = Outage(server, down_at=1.5, back_at=61.5)
    run(server, job, SkipClock(outage))
    assert outage.state == "back"
    assert server.url == url
    rows = pl.read_parquet(job.output_path)
    assert sorted(rows["source"]) == sorted(p.name for p in docs.iterdir())
    assert set(rows["status"]) == {"ok"}
    stats = server.stats()
    assert stats["served"]["max_per_request"] == 1  # nothing answered twice
    assert 0 < stats["served"]["distinct"] == DOCUMENTS
    calls = pl.read_parquet(job.calls_path)
    report = json.loads(report_path(job.output_path).read_text(encoding="utf-8"))
    refused = report["calls"]["attempt_errors"].get("connection_failed", 0)
    assert refused > 0, "the outage came and went between requests: it proved nothing"
    # The attempts that never reached the server are exactly those without an HTTP status.
    unanswered = calls.filter(pl.col("status").is_null())
    assert len(unanswered) == sum(report["calls"]["attempt_errors"].values())
    assert report["calls"]["attempts"] == stats["by_endpoint"]["messages"] + len(unanswered)
    assert (calls.group_by("doc_id").agg(pl.col("attempt").max())["attempt"] <= MAX_ATTEMPTS).all()


def test_server_gone_for_good_stops_the_run_and_keeps_what_finished(
    start_simulator: StartSimulator, tmp_path: Path
) -> None:
    """A host that stops accepting connections mid-run is an unreachable host: once a call
    has spent its retries on it, the run stops (exit 3) with what finished saved, instead of
    spending the whole retry budget again on every remaining document."""
    server = start_simulator()
    docs = make_docs(tmp_path / "docs")
    out = tmp_path / "out.parquet"
    job = make_job(docs, out, PACED)
    clock = SkipClock(Outage(server, down_at=1.5, back_at=None))
    with pytest.raises(HostUnreachable, match=r"127\.0\.0\.1.*finished work is kept"):
        run(server, job, clock)
    saved = pl.read_parquet(out)
    assert 0 < len(saved) < DOCUMENTS
    assert set(saved["status"]) == {"ok"}
    report = json.loads(report_path(out).read_text(encoding="utf-8"))
    assert report["ended"] == "fatal"
    # The documents cut off by the outage have no row: the next run sends them.
    assert pl.read_parquet(job.calls_path)["status"].to_list() == [200] * len(saved)

    server.start()  # back: the same command finishes the rest, without resending
    served_before = server.stats()["served"]["total"]
    outcome = run(server, make_job(docs, out, PACED), SkipClock())
    final = pl.read_parquet(out)
    assert sorted(final["source"]) == sorted(p.name for p in docs.iterdir())
    assert set(final["status"]) == {"ok"}
    assert outcome.reused == len(saved)
    assert server.stats()["served"]["total"] - served_before == DOCUMENTS - len(saved)


@pytest.mark.parametrize("strategy", ["map_reduce", "per_chunk"])
def test_documents_of_many_calls_under_faults_still_end_as_their_rows(
    start_simulator: StartSimulator, tmp_path: Path, strategy: str
) -> None:
    """Long documents (several map calls and a reduce, or a row per chunk) with retries that
    run out on some calls: a document is one row (one per chunk with ``per_chunk``), never
    two, and a failed part fails its document (or its chunk's row) alone."""
    faults = Faults(api_error=0.25, drop=0.1, truncated=0.1, seed=15)
    server = start_simulator(SimulatorConfig(models=TEST_MODELS, faults=faults))
    docs = tmp_path / "docs"
    docs.mkdir()
    paragraph = "The committee reviewed the budget, the staffing plan and the risks. " * 8
    for n in range(8):
        (docs / f"report-{n}.txt").write_text(
            f"Report {n}.\n\n" + (paragraph + "\n\n") * 30, encoding="utf-8"
        )
    job = make_job(
        docs,
        tmp_path / "out.parquet",
        "retry.max_attempts=2",
        f"chunking.strategy={strategy}",
        "chunking.max_chunk_tokens=1000",
    )
    run(server, job, SkipClock())
    rows = pl.read_parquet(job.output_path)
    calls = pl.read_parquet(job.calls_path)
    stats = server.stats()
    key = ["source", "chunk"] if strategy == "per_chunk" else ["source"]
    assert rows.select(key).is_duplicated().sum() == 0
    assert set(rows["source"]) == {p.name for p in docs.iterdir()}
    assert (rows["chunks"] >= 3).all()
    if strategy == "per_chunk":
        assert len(rows) == rows.group_by("source").agg(pl.col("chunks").first())["chunks"].sum()
    assert set(rows["status"]) == {"ok", "error"}  # the seed gives both
    failed = rows.filter(pl.col("status") == "error")
    assert set(failed["error_type"]) == {"retries_exhausted"}
    served, lost = stats["served"]["by_request"], stats["served"]["dropped_by_request"]
    assert all(served[d] - lost.get(d, 0) <= 1 for d in served)
    assert calls.group_by("doc_id", "call").agg(pl.col("attempt").max())["attempt"].max() <= 2
    report = json.loads(report_path(job.output_path).read_text(encoding="utf-8"))
    injected: Counter[str] = Counter()
    for kind, count in stats["faults"].items():
        injected[SEEN_AS[kind]] += count
    assert report["calls"]["attempt_errors"] == dict(injected)
    assert report["calls"]["attempts"] == len(calls) == stats["by_endpoint"]["messages"]
    assert report["documents"]["total"] == len(list(docs.iterdir()))
