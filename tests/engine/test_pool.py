"""The engine against the simulator over HTTP: limits kept, faults ridden out, fatal stops."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import anyio.lowlevel
import httpx2 as httpx  # the client's HTTP stack: its transports and responses
import pytest

from pipeline.config.endpoint import ApiKey, Endpoint
from pipeline.core import errors
from pipeline.core.limits import Limits
from pipeline.core.models import Call, CallResult
from pipeline.engine.base import run_calls
from pipeline.engine.client import MessagesClient
from pipeline.engine.pool import Pool
from pipeline.engine.retry import RetryPolicy
from pipeline.simulator import (
    Faults,
    Latency,
    SimulatorConfig,
    SimulatorServer,
    count_request,
    request_digest,
)
from tests.conftest import TEST_MODELS, FakeClock, StartSimulator

QUICK = RetryPolicy(initial_wait_s=0.01, max_wait_s=0.05)


def make_calls(count: int, model: str = "claude-haiku-4-5", start: int = 0) -> list[Call]:
    calls = []
    for n in range(start, start + count):
        params = {
            "model": model,
            "max_tokens": 150,
            "messages": [
                {"role": "user", "content": f"Document {n}: " + "word " * (20 + n * 37 % 300)}
            ],
        }
        calls.append(Call(f"doc-{n}", params, input_tokens=int(count_request(params) * 1.2)))
    return calls


@asynccontextmanager
async def engine_for(
    server: SimulatorServer, limits: Limits, *, key: str | None = None, **kwargs: Any
) -> AsyncIterator[Pool]:
    endpoint = Endpoint(server.url, ApiKey(key or server.api_key), key_source="$TEST_KEY")
    read_timeout = kwargs.pop("read_timeout_s", None)
    async with MessagesClient(
        endpoint, concurrency=limits.max_concurrency or 8, read_timeout_s=read_timeout
    ) as client:
        yield Pool(client, limits, **kwargs)


async def run_all(engine: Pool, calls: list[Call]) -> list[CallResult]:
    results: list[CallResult] = []

    async def sink(result: CallResult) -> None:
        results.append(result)

    await run_calls(engine, calls, sink)
    return results


@pytest.mark.anyio
async def test_same_limits_as_the_server_means_no_429_and_peaks_within(
    start_simulator: StartSimulator,
) -> None:
    limits = Limits(
        requests_per_minute=3_000, tokens_per_minute=1_200_000, max_concurrency=10, per_second=True
    )
    server = start_simulator(
        SimulatorConfig(
            models=TEST_MODELS, limits=limits, latency=Latency(fixed=0.05, per_output_token=0.0005)
        )
    )
    calls = make_calls(200)
    async with engine_for(server, limits, retry=QUICK) as engine:
        results = await run_all(engine, calls)
    stats = server.stats()
    assert sorted(r.call.key for r in results) == sorted(c.key for c in calls)
    assert all(r.ok for r in results)
    assert stats["rate_limited"] == {}, stats["rate_limited_at"]
    assert stats["peaks"]["concurrency"] <= 10
    assert stats["peaks"]["requests_per_second"] <= 50 * 2  # a second's bucket plus its refill
    assert stats["served"]["max_per_request"] == 1


@pytest.mark.anyio
async def test_faults_end_as_exactly_one_success_per_call(start_simulator: StartSimulator) -> None:
    faults = Faults(overloaded=0.10, api_error=0.05, drop=0.02, seed=11)
    server = start_simulator(SimulatorConfig(models=TEST_MODELS, faults=faults))
    calls = make_calls(200)
    async with engine_for(server, Limits(max_concurrency=16), retry=QUICK) as engine:
        results = await run_all(engine, calls)
    assert len(results) == len(calls)
    assert sorted(r.call.key for r in results) == sorted(c.key for c in calls)
    assert all(r.ok for r in results), [r.error for r in results if not r.ok]
    stats = server.stats()
    assert stats["faults"]["overloaded"] > 0
    assert stats["faults"]["drop"] > 0
    served, dropped = stats["served"]["by_request"], stats["served"]["dropped_by_request"]
    for call in calls:
        digest = request_digest(call.params)
        # Served once, or again only where a reply was lost in transit.
        assert served[digest] == 1 + dropped.get(digest, 0)
    retried = [r for r in results if len(r.attempts) > 1]
    assert retried
    assert all(a.error_kind for r in retried for a in r.attempts[:-1])
    assert all(r.attempts[-1].status == 200 for r in results)


@pytest.mark.anyio
async def test_mid_stream_errors_and_slow_replies_are_retried(
    start_simulator: StartSimulator,
) -> None:
    faults = Faults(stream_error=0.2, slow=0.05, slow_seconds=30, seed=5)
    server = start_simulator(SimulatorConfig(models=TEST_MODELS, faults=faults))
    calls = make_calls(60)
    async with engine_for(
        server, Limits(max_concurrency=12), retry=QUICK, stream=True, read_timeout_s=0.5
    ) as engine:
        results = await run_all(engine, calls)
        kinds = engine.totals().errors
    assert all(r.ok for r in results)
    assert kinds.get("overloaded", 0) == server.stats()["faults"]["stream_error"] > 0
    assert kinds.get("reply_timed_out", 0) == server.stats()["faults"]["slow"] > 0


@pytest.mark.anyio
async def test_wrong_key_stops_before_any_document_is_sent(simulator: SimulatorServer) -> None:
    before = simulator.stats()["by_endpoint"].get("messages", 0)
    started = time.monotonic()
    async with engine_for(simulator, Limits(), key="sk-wrong") as engine:
        with pytest.raises(errors.AuthenticationFailed, match=r"\$TEST_KEY was refused"):
            await run_all(engine, make_calls(20))
    assert time.monotonic() - started < 2
    assert simulator.stats()["by_endpoint"].get("messages", 0) == before


@pytest.mark.anyio
async def test_unknown_model_stops_the_run_and_keeps_what_finished(
    start_simulator: StartSimulator,
) -> None:
    server = start_simulator(SimulatorConfig(models=TEST_MODELS, latency=Latency(fixed=0.02)))
    calls = (
        make_calls(30)
        + make_calls(1, model="claude-nonexistent", start=30)
        + make_calls(200, start=31)
    )
    results: list[CallResult] = []

    async def sink(result: CallResult) -> None:
        results.append(result)

    started = time.monotonic()
    async with engine_for(server, Limits(max_concurrency=4), retry=QUICK) as engine:
        with pytest.raises(errors.ModelNotFound, match=r"claude-nonexistent.*Check the model name"):
            await run_calls(engine, calls, sink)
    assert time.monotonic() - started < 2
    stats = server.stats()
    assert len(results) >= 30 - 4
    assert all(r.ok for r in results)
    # No new requests after the fatal one: at most the others already in flight.
    assert stats["by_endpoint"]["messages"] <= 31 + 4
    # Every reply the server produced and the client finished reading reached the sink.
    assert stats["served"]["total"] - len(results) <= 4


@pytest.mark.anyio
async def test_unreachable_host_stops_at_once_with_the_url() -> None:
    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)

    endpoint = Endpoint("http://127.0.0.1:9", ApiKey("k"))  # the discard port: nothing listens
    async with MessagesClient(endpoint) as client:
        engine = Pool(client, Limits(), sleep=sleep)
        with pytest.raises(errors.HostUnreachable, match=r"127\.0\.0\.1.*Check the base URL"):
            await run_all(engine, make_calls(5))
    assert len(waits) == 2  # three quick tries, not an overnight of patience


@pytest.mark.anyio
async def test_retry_after_is_honoured_on_virtual_time(fake_clock: FakeClock) -> None:
    sent_at: list[float] = []
    replies = iter([429, 200, 200])

    def handle(request: httpx.Request) -> httpx.Response:
        sent_at.append(fake_clock())
        status = next(replies)
        if status == 429:
            body = {"type": "error", "error": {"type": "rate_limit_error", "message": "slow down"}}
            return httpx.Response(429, json=body, headers={"retry-after": "7"})
        message = {"type": "message", "id": "m", "model": "x", "content": [], "usage": {}}
        return httpx.Response(200, json=message)

    async def sleep(seconds: float) -> None:
        fake_clock.advance(seconds)

    endpoint = Endpoint("http://127.0.0.1:1", ApiKey("k"))
    async with MessagesClient(endpoint, transport=httpx.MockTransport(handle)) as client:
        engine = Pool(client, Limits(max_concurrency=1), clock=fake_clock, sleep=sleep)
        results = [await engine.execute(call) for call in make_calls(2)]
    start = sent_at[0]
    assert [t - start for t in sent_at] == [0, 7, 7]
    assert [a.status for a in results[0].attempts] == [429, 200]
    assert results[0].attempts[0].error_kind == "rate_limited"
    assert engine.pacer.cooldowns == 1


@pytest.mark.anyio
async def test_server_saying_do_not_retry_is_obeyed() -> None:
    count = 0

    def handle(request: httpx.Request) -> httpx.Response:
        nonlocal count
        count += 1
        body = {"type": "error", "error": {"type": "api_error", "message": "poison request"}}
        return httpx.Response(
            500, json=body, headers={"x-should-retry": "false", "request-id": "req_9"}
        )

    endpoint = Endpoint("http://127.0.0.1:1", ApiKey("k"))
    async with MessagesClient(endpoint, transport=httpx.MockTransport(handle)) as client:
        result = await Pool(client, Limits()).execute(make_calls(1)[0])
    assert count == 1
    assert isinstance(result.error, errors.RetriesExhausted)
    assert result.error.request_id == "req_9"
    assert "poison request" in str(result.error)


@pytest.mark.anyio
async def test_permanent_errors_become_results_and_the_run_goes_on(
    simulator: SimulatorServer,
) -> None:
    calls = make_calls(5)
    bad = Call("bad", {**calls[0].params, "temperature": 3}, input_tokens=10)
    async with engine_for(simulator, Limits(max_concurrency=2)) as engine:
        results = await run_all(engine, [*calls, bad])
    by_key = {r.call.key: r for r in results}
    assert isinstance(by_key["bad"].error, errors.InvalidRequest)
    assert "temperature" in str(by_key["bad"].error)
    assert len(by_key["bad"].attempts) == 1
    assert all(by_key[c.key].ok for c in calls)


@pytest.mark.anyio
async def test_memory_streams_are_bounded_by_concurrency(simulator: SimulatorServer) -> None:
    """A slow sink applies back-pressure: calls are pulled only as results drain."""
    pulled = 0

    def calls() -> Any:
        nonlocal pulled
        for call in make_calls(40):
            pulled += 1
            yield call

    seen_gap: list[int] = []

    async def slow_sink(result: CallResult) -> None:
        seen_gap.append(pulled - len(seen_gap))
        await anyio.lowlevel.checkpoint()

    async with engine_for(simulator, Limits(max_concurrency=2)) as engine:
        await run_calls(engine, calls(), slow_sink)
    # In flight: 2 working + 2 queued calls + 2 queued results + 1 in the feeder's hand.
    assert max(seen_gap) <= 2 * 3 + 1


@pytest.mark.anyio
async def test_a_stopped_pool_sends_nothing_new_and_lets_the_call_in_flight_finish() -> None:
    arrived, release = anyio.Event(), anyio.Event()
    sent: list[str] = []

    async def handle(request: httpx.Request) -> httpx.Response:
        sent.append(request.url.path)
        arrived.set()
        await release.wait()
        message = {"type": "message", "id": "m", "model": "x", "content": [], "usage": {}}
        return httpx.Response(200, json=message)

    endpoint = Endpoint("http://127.0.0.1:1", ApiKey("k"))
    first, second = make_calls(2)
    results: list[CallResult] = []
    async with MessagesClient(endpoint, transport=httpx.MockTransport(handle)) as client:
        engine = Pool(client, Limits(max_concurrency=2), check=False)
        async with engine.running(), anyio.create_task_group() as group:

            async def in_flight() -> None:
                results.append(await engine.submit(first))

            group.start_soon(in_flight)
            await arrived.wait()
            engine.stop()
            with pytest.raises(errors.NotSent):
                await engine.submit(second)
            release.set()
    assert [r.ok for r in results] == [True]  # the call in flight finished
    assert sent == ["/v1/messages"]  # and nothing was sent after the stop
    assert engine.totals().calls == 1
