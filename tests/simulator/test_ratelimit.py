"""Tier limits: continuous token buckets, the binding limit named, headers that tell the truth."""

from __future__ import annotations

import anyio
import httpx
import pytest

from pipeline.core.limits import TokenBucket
from pipeline.simulator import Latency, Limits, SimulatorConfig, count_request
from pipeline.simulator.ratelimit import RateLimiter
from tests.conftest import TEST_MODELS, FakeClock, StartSimulator
from tests.simulator.support import VERSION, body, call, error_of


def limiter(clock: FakeClock, **limits: int) -> RateLimiter:
    return RateLimiter(Limits(**limits), clock=clock, wall=lambda: 0.0, round_remaining=False)


def test_bucket_starts_full_and_refills_continuously(fake_clock: FakeClock) -> None:
    bucket = TokenBucket(60, per_second=False, clock=fake_clock)
    bucket.take(60)
    assert bucket.wait_for(1) == pytest.approx(1.0)
    fake_clock.advance(0.5)
    assert bucket.level() == pytest.approx(0.5)
    fake_clock.advance(0.5)
    assert bucket.wait_for(1) == 0
    fake_clock.advance(3600)
    assert bucket.level() == 60  # never more than a minute's worth


def test_per_second_bucket_holds_one_seconds_worth(fake_clock: FakeClock) -> None:
    bucket = TokenBucket(600, per_second=True, clock=fake_clock)
    assert bucket.capacity == 10
    slow = TokenBucket(30, per_second=True, clock=fake_clock)
    assert slow.capacity == 1  # 30/min enforced as one at a time, every 2 s
    slow.take(1)
    assert slow.wait_for(1) == pytest.approx(2.0)


def test_request_larger_than_the_bucket_runs_when_full_and_leaves_debt(
    fake_clock: FakeClock,
) -> None:
    limits = limiter(fake_clock, input_tokens_per_minute=1_000)
    assert limits.admit(5_000) is None  # larger than a minute's budget: admitted when full
    refusal = limits.admit(10)
    assert refusal is not None
    assert refusal.limit == "input_tokens"
    assert refusal.retry_after == pytest.approx((4_000 + 10) / (1_000 / 60))


def test_output_tokens_are_charged_after_the_reply(fake_clock: FakeClock) -> None:
    limits = limiter(fake_clock, output_tokens_per_minute=600)
    assert limits.admit(10) is None
    limits.release(input_tokens=10, output_tokens=900, refund_input=False)
    refusal = limits.admit(10)
    assert refusal is not None
    assert refusal.limit == "output_tokens"
    assert refusal.retry_after == pytest.approx(30.0, abs=0.01)  # 300 of debt at 10/s
    fake_clock.advance(30.01)
    assert limits.admit(10) is None


def test_combined_budget_counts_input_now_and_output_later(fake_clock: FakeClock) -> None:
    limits = limiter(fake_clock, tokens_per_minute=1_000)
    assert limits.admit(600) is None
    limits.release(input_tokens=600, output_tokens=300, refund_input=False)
    refusal = limits.admit(200)
    assert refusal is not None
    assert refusal.limit == "tokens"


def test_refused_request_takes_nothing(fake_clock: FakeClock) -> None:
    limits = limiter(fake_clock, requests_per_minute=10, input_tokens_per_minute=100)
    assert limits.admit(100) is None
    assert limits.admit(50) is not None
    assert limits.buckets["requests"] is not None
    assert limits.buckets["requests"].level() == 9  # the refused one did not use a request


def test_concurrency_cap_and_refund(fake_clock: FakeClock) -> None:
    limits = limiter(fake_clock, max_concurrency=1, input_tokens_per_minute=100)
    assert limits.admit(80) is None
    refusal = limits.admit(1)
    assert refusal is not None
    assert refusal.limit == "concurrency"
    limits.release(input_tokens=80, output_tokens=0, refund_input=True)
    assert limits.admit(100) is None  # the failed request's input came back


def test_headers_report_limit_remaining_and_reset(fake_clock: FakeClock) -> None:
    limits = RateLimiter(
        Limits(requests_per_minute=50, tokens_per_minute=100_000),
        clock=fake_clock,
        wall=lambda: 1_700_000_000.0,
        round_remaining=True,
    )
    limits.admit(12_345)
    headers = limits.headers()
    assert headers["anthropic-ratelimit-requests-limit"] == "50"
    assert headers["anthropic-ratelimit-requests-remaining"] == "49"
    assert headers["anthropic-ratelimit-tokens-limit"] == "100000"
    assert headers["anthropic-ratelimit-tokens-remaining"] == "88000"  # rounded to thousands
    # 12,345 tokens at 100,000/min take 7.4 s to come back.
    assert headers["anthropic-ratelimit-tokens-reset"] == "2023-11-14T22:13:27Z"


def test_http_429_names_the_limit_and_retry_after_is_right(
    start_simulator: StartSimulator, fake_clock: FakeClock
) -> None:
    server = start_simulator(
        SimulatorConfig(models=TEST_MODELS, limits=Limits(requests_per_minute=3)), clock=fake_clock
    )
    for n in range(3):
        response = call(server, body(f"document {n}"))
        assert response.status_code == 200
        assert response.headers["anthropic-ratelimit-requests-remaining"] == str(2 - n)
    refused = call(server, body("document 3"))
    status, kind, message = error_of(refused)
    assert (status, kind) == (429, "rate_limit_error")
    assert "3 requests per minute" in message
    assert refused.headers["retry-after"] == "20"
    assert refused.headers["anthropic-ratelimit-requests-remaining"] == "0"
    fake_clock.advance(20)
    assert call(server, body("document 3")).status_code == 200
    stats = server.stats()
    assert stats["rate_limited"] == {"requests": 1}
    assert stats["by_status"] == {"200": 4, "429": 1}
    assert stats["peaks"]["requests_per_minute"] == 4  # 3 at once, 1 more 20 s later


def test_http_token_budget_uses_the_simulators_own_count(
    start_simulator: StartSimulator, fake_clock: FakeClock
) -> None:
    first = body("alpha " * 400)
    budget = count_request(first) + 10
    server = start_simulator(
        SimulatorConfig(models=TEST_MODELS, limits=Limits(input_tokens_per_minute=budget)),
        clock=fake_clock,
    )
    assert call(server, first).status_code == 200
    refused = call(server, body("beta " * 50))
    assert error_of(refused)[:2] == (429, "rate_limit_error")
    assert server.stats()["rate_limited"] == {"input_tokens": 1}


@pytest.mark.anyio
async def test_concurrency_cap_refuses_the_extra_requests(start_simulator: StartSimulator) -> None:
    config = SimulatorConfig(
        models=TEST_MODELS, limits=Limits(max_concurrency=2), latency=Latency(fixed=1.0)
    )
    server = start_simulator(config)
    statuses: list[int] = []
    headers = {"x-api-key": server.api_key, "anthropic-version": VERSION}
    async with httpx.AsyncClient(base_url=server.url, headers=headers, timeout=10) as client:

        async def one(n: int) -> None:
            reply = await client.post("/v1/messages", json=body(f"doc {n}"))
            statuses.append(reply.status_code)

        async with anyio.create_task_group() as group:
            for n in range(4):
                group.start_soon(one, n)
    assert sorted(statuses) == [200, 200, 429, 429]
    stats = server.stats()
    assert stats["peaks"]["concurrency"] == 2
    assert stats["rate_limited"] == {"concurrency": 2}


@pytest.mark.anyio
async def test_observed_peaks_never_exceed_what_the_limits_admit(
    start_simulator: StartSimulator,
) -> None:
    """Hammer a per-second-enforced limit from 16 clients; count what got through."""
    limits = Limits(requests_per_minute=1_200, max_concurrency=8, per_second=True)
    server = start_simulator(SimulatorConfig(models=TEST_MODELS, limits=limits))
    headers = {"x-api-key": server.api_key, "anthropic-version": VERSION}
    async with httpx.AsyncClient(base_url=server.url, headers=headers, timeout=10) as client:

        async def worker(first: int) -> None:
            for n in range(first, 400, 16):
                await client.post("/v1/messages", json=body(f"doc {n}"))

        async with anyio.create_task_group() as group:
            for first in range(16):
                group.start_soon(worker, first)
    stats = server.stats()
    admitted = stats["by_status"].get("200", 0)
    capacity, rate = 20, 20  # per second: 1,200/min = 20/s, a bucket of one second's worth
    assert stats["by_status"].get("429", 0) > 0, "the limit was never reached: test proves nothing"
    assert admitted <= capacity + rate * stats["uptime_s"]
    assert stats["peaks"]["requests_per_second"] <= capacity + rate
    assert stats["peaks"]["requests_per_minute"] <= capacity + rate * stats["uptime_s"]
    assert stats["peaks"]["concurrency"] <= 8
