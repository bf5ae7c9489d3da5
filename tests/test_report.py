"""The run report and the progress lines: counted from what happened, readable again later."""

from __future__ import annotations

import logging
from pathlib import Path

import anyio
import pytest

from pipeline.cli import EXIT_OK, EXIT_USAGE, main
from pipeline.core import rates
from pipeline.core.catalogue import list_price
from pipeline.core.limits import TIERS, Limits
from pipeline.core.models import Attempt, Call, CallResult, Reply, Usage
from pipeline.core.pricing import Price
from pipeline.output import report
from pipeline.output.progress import PlainLines, line
from pipeline.output.report import RunInfo, Tally
from tests.conftest import FakeClock


def result(
    *statuses: int, latency: float = 1.0, usage: Usage | None = None, at: float = 0.0
) -> CallResult:
    attempts = tuple(
        Attempt(
            number=n,
            started_at=at + n - 1,
            latency_s=latency,
            status=status,
            error_kind=None if status == 200 else {429: "rate_limited"}.get(status, "overloaded"),
        )
        for n, status in enumerate(statuses, 1)
    )
    reply = None
    if statuses[-1] == 200:
        reply = Reply("msg", "m", (), "end_turn", None, usage or Usage(100, 10), None)
    return CallResult(Call("k", {}, 1), reply, None, attempts)


def info(limits: Limits = TIERS["basic"], ended: str = "completed") -> RunInfo:
    return RunInfo(
        job="nightly",
        model="claude-haiku-4-5",
        base_url="https://ai.megallm.io",
        output=Path("/data/out.parquet"),
        limits=limits,
        price=list_price("claude-haiku-4-5"),
        ended=ended,
    )


def test_report_counts_documents_calls_tokens_and_rate_against_the_tier(
    fake_clock: FakeClock,
) -> None:
    tally = Tally(clock=fake_clock)
    for latency in (1.0, 2.0, 3.0, 4.0):
        tally.call(result(200, latency=latency), cost=0.5)
    tally.call(result(429, 529, 200, latency=10.0), cost=0.5)  # two retries, one 429
    for _ in range(4):
        tally.document(["ok"])
    tally.document(["error"], "retries_exhausted")
    tally.document(["skipped"], "empty_file")
    tally.reused = 3
    fake_clock.advance(120)  # two minutes

    built = report.build(tally, info())

    assert built["documents"] == {
        "total": 9,
        "by_status": {"error": 1, "ok": 7, "skipped": 1},
        "by_error_type": {"retries_exhausted": 1, "empty_file": 1},
        "reused": 3,
        "sent": 6,
    }
    calls = built["calls"]
    assert (calls["calls"], calls["attempts"], calls["retries"], calls["rate_limited_429"]) == (
        5,
        7,
        2,
        1,
    )
    assert calls["attempt_errors"] == {"rate_limited": 1, "overloaded": 1}
    # Latency of answered attempts only: 1, 2, 3, 4, 10.
    assert (calls["latency_p50_s"], calls["latency_p95_s"]) == (3.0, 10.0)
    assert built["tokens"]["input"] == 500
    assert built["cost_usd"] == 2.5
    assert built["throughput"]["requests_per_min"] == 3.5  # 7 attempts in 2 minutes
    # Every attempt was sent within the same minute: the busiest minute saw all 7.
    rpm = built["allowance"]["requests_per_minute"]
    assert rpm == {"limit": 50, "achieved": 7, "share": 0.14}
    assert built["allowance"]["tokens_per_minute"]["achieved"] == 550.0  # 500 in + 50 out
    text = report.render(built)
    assert "9: 1 error, 7 ok, 1 skipped; 3 finished earlier, not sent again" in text
    assert "retries_exhausted 1, empty_file 1" in text
    assert "requests 7/50 a minute (14%)" in text
    assert "$2.5000" in text


def test_rate_against_the_tier_is_the_busiest_60_seconds_not_the_mean(
    fake_clock: FakeClock,
) -> None:
    # A 7-second run of 23 calls: the mean stretched to a minute would be 197/min.
    tally = Tally(clock=fake_clock)
    for n in range(23):
        tally.call(result(200, at=n * 0.3, usage=Usage(1_000, 100)), cost=0)
    fake_clock.advance(7)
    built = report.build(tally, info())
    assert built["allowance"]["requests_per_minute"] == {
        "limit": 50,
        "achieved": 23,
        "share": 0.46,
    }
    assert built["allowance"]["tokens_per_minute"]["achieved"] == 23 * 1_100
    assert "requests 23/50 a minute (46%)" in report.render(built)


def test_the_busiest_window_slides_over_the_run() -> None:
    # 10 at t=0, 30 between t=50 and t=79 (one a second), 5 at t=200.
    times = [0.0] * 10 + [50.0 + n for n in range(30)] + [200.0] * 5
    # [0, 60) holds 10 + 10 = 20; [50, 110) holds all 30; nothing holds more.
    assert rates.peak(times) == 30
    assert rates.peak([0.0, 59.9, 60.0]) == 2  # the window is 60 s, not 61
    assert rates.peak([]) == 0
    weights = [1.0] * 10 + [100.0] * 30 + [1.0] * 5
    assert rates.peak(times, weights) == 3_000
    # The trailing curve: what the 60 s up to each moment held.
    assert rates.trailing(times, None, [0.0, 59.0, 60.0, 79.0, 200.0]) == [10, 20, 11, 30, 5]


def test_a_document_with_a_failed_chunk_counts_as_failed() -> None:
    tally = Tally()
    tally.document(["ok", "error", "ok"], "invalid_request")
    assert tally.documents == {"error": 1}
    assert tally.errors == {"invalid_request": 1}


def test_report_is_written_beside_the_parquet_and_shown_again(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    output = tmp_path / "out.parquet"
    built = report.build(Tally(), info(ended="max_duration"))
    written = report.write(built, output)
    assert written == tmp_path / "out.report.json"
    assert report.load(output) == built

    assert main(["report", str(output)]) == EXIT_OK
    shown = capsys.readouterr().out
    assert "stopped at --max-duration (run again to finish)" in shown
    assert "Run of nightly (claude-haiku-4-5)" in shown


def test_report_of_a_run_that_wrote_none_says_what_to_give(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["report", str(tmp_path / "never.parquet")]) == EXIT_USAGE
    assert "give the Parquet file a run wrote" in capsys.readouterr().err


def test_prices_cover_aliases_dated_ids_and_batches() -> None:
    haiku = list_price("claude-haiku-4-5-20251001")
    assert haiku == list_price("claude-haiku-4-5") == Price(1.0, 5.0, 1.25, 0.1)
    assert list_price("claude-opus-4-1-20250805") == Price(15.0, 75.0, 18.75, 1.5)
    assert list_price("claude-opus-4-6") == Price(5.0, 25.0, 6.25, 0.5)
    assert list_price("claude-sonnet-4-0") == Price(3.0, 15.0, 3.75, 0.3)
    assert list_price("some-gateway-model") is None
    usage = Usage(1_000_000, 100_000, 200_000, 1_000_000)
    assert haiku is not None
    assert haiku.cost(usage) == pytest.approx(1.0 + 0.5 + 0.25 + 0.1)
    assert haiku.cost(usage, batch=True) == pytest.approx(0.925)


def test_progress_line_says_done_of_total_rate_and_time_left(fake_clock: FakeClock) -> None:
    tally = Tally(clock=fake_clock)
    tally.discovered = 1_000
    for _ in range(250):
        tally.document(["ok"])
    tally.document(["error"], "unreadable")
    tally.call(result(429, 200), cost=0)
    fake_clock.advance(60)
    assert line(tally) == (
        "[0:01:00] 251 documents (still finding files), 1 errors, 251.0/min; "
        "tokens 100 in / 10 out; 1 retries, 1 answered 429"
    )
    tally.discovery_done = True
    assert line(tally).startswith(
        "[0:01:00] 251/1,000 documents (25%), 1 errors, 251.0/min, about 0:02:59 left;"
    )


@pytest.mark.anyio
async def test_plain_lines_log_a_progress_event_every_period(
    caplog: pytest.LogCaptureFixture,
) -> None:
    tally = Tally()
    tally.discovered, tally.discovery_done = 3, True
    periods: list[float] = []

    with anyio.CancelScope() as scope:

        async def sleep(seconds: float) -> None:
            periods.append(seconds)
            tally.document(["ok"])
            if len(periods) == 3:
                scope.cancel()
            await anyio.lowlevel.checkpoint()

        with caplog.at_level(logging.INFO, logger="pipeline.progress"):
            await PlainLines(every_s=30, sleep=sleep).run(tally)

    assert periods == [30, 30, 30]
    events = [r for r in caplog.records if getattr(r, "event", None) == "progress"]
    assert [(e.done, e.total) for e in events] == [(1, 3), (2, 3)]  # type: ignore[attr-defined]
