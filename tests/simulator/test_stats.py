"""The stats endpoint: what tests and benchmarks read to judge a client."""

from __future__ import annotations

import httpx

from pipeline.simulator import Limits, SimulatorConfig, request_digest
from tests.conftest import TEST_MODELS, FakeClock, StartSimulator
from tests.simulator.support import body, call


def test_replies_are_counted_per_distinct_request(start_simulator: StartSimulator) -> None:
    server = start_simulator()
    a, b = body("document a"), body("document b")
    for payload in (a, b, a, {**a, "stream": True}):
        assert call(server, payload).status_code == 200
    served = server.stats()["served"]
    # The streamed copy of ``a`` asks the same thing: it is the same request served again.
    assert served["by_request"] == {request_digest(a): 3, request_digest(b): 1}
    assert (served["total"], served["distinct"], served["max_per_request"]) == (4, 2, 3)


def test_stats_report_status_tokens_peaks_and_limits(
    start_simulator: StartSimulator, fake_clock: FakeClock
) -> None:
    limits = Limits(requests_per_minute=2, max_concurrency=5)
    server = start_simulator(SimulatorConfig(models=TEST_MODELS, limits=limits), clock=fake_clock)
    replies = [call(server, body(f"doc {n}")) for n in range(3)]
    fake_clock.advance(7.5)
    stats = server.stats()
    assert stats["by_status"] == {"200": 2, "429": 1}
    assert stats["by_endpoint"] == {"messages": 3}
    assert stats["rate_limited_at"] == [0.0]
    assert stats["uptime_s"] == 7.5
    usage = [r.json()["usage"] for r in replies[:2]]
    assert stats["tokens"] == {
        "input": sum(u["input_tokens"] for u in usage),
        "output": sum(u["output_tokens"] for u in usage),
    }
    assert stats["peaks"]["requests_per_second"] == 2
    assert stats["peaks"]["concurrency"] == 1
    assert stats["limits"] == {"requests_per_minute": 2, "max_concurrency": 5, "per_second": False}


def test_reset_forgets_traffic_and_refills_buckets(
    start_simulator: StartSimulator, fake_clock: FakeClock
) -> None:
    server = start_simulator(
        SimulatorConfig(models=TEST_MODELS, limits=Limits(requests_per_minute=1)), clock=fake_clock
    )
    assert call(server, body()).status_code == 200
    assert call(server, body()).status_code == 429
    assert httpx.post(f"{server.url}/_simulator/reset").json() == {"reset": True}
    assert server.stats()["requests"] == 0
    assert call(server, body()).status_code == 200
