"""Faults on demand: each kind looks like the real failure, at about its configured rate."""

from __future__ import annotations

import json

import httpx
import pytest

from pipeline.simulator import Faults, SimulatorConfig, request_digest
from pipeline.simulator.faults import draw
from tests.conftest import TEST_MODELS, StartSimulator
from tests.simulator.support import body, call, error_of


def test_draws_are_reproducible_and_independent_per_attempt() -> None:
    faults = Faults(overloaded=0.5, seed=7)
    first = [draw(faults, f"{n:064x}", 0, stream=False) for n in range(200)]
    assert first == [draw(faults, f"{n:064x}", 0, stream=False) for n in range(200)]
    retry = [draw(faults, f"{n:064x}", 1, stream=False) for n in range(200)]
    assert retry != first  # a retry draws afresh
    other_seed = Faults(overloaded=0.5, seed=8)
    assert first != [draw(other_seed, f"{n:064x}", 0, stream=False) for n in range(200)]


def test_rates_come_out_near_the_configured_ones() -> None:
    faults = Faults(overloaded=0.10, api_error=0.05, drop=0.02, slow=0.03, seed=1)
    n = 20_000
    counts: dict[str | None, int] = {}
    for i in range(n):
        kind = draw(faults, f"{i:064x}", 0, stream=False)
        counts[kind] = counts.get(kind, 0) + 1
    for kind, rate in (("overloaded", 0.10), ("api_error", 0.05), ("drop", 0.02), ("slow", 0.03)):
        assert counts[kind] / n == pytest.approx(rate, abs=0.01), kind


def test_stream_errors_only_touch_streams() -> None:
    faults = Faults(stream_error=1.0)
    assert draw(faults, "0" * 64, 0, stream=False) is None
    assert draw(faults, "0" * 64, 0, stream=True) == "stream_error"


def test_faults_over_http_at_their_rates(start_simulator: StartSimulator) -> None:
    config = SimulatorConfig(
        models=TEST_MODELS, faults=Faults(overloaded=0.10, api_error=0.05, drop=0.05, seed=3)
    )
    server = start_simulator(config)
    outcomes: dict[str, int] = {}
    with httpx.Client(base_url=server.url, timeout=10) as client:
        for n in range(300):
            try:
                reply = client.post(
                    "/v1/messages",
                    json=body(f"document number {n}"),
                    headers={"x-api-key": server.api_key, "anthropic-version": "2023-06-01"},
                )
                key = str(reply.status_code)
            except httpx.RemoteProtocolError:
                key = "dropped"
            outcomes[key] = outcomes.get(key, 0) + 1
    stats = server.stats()
    assert outcomes.get("529", 0) == stats["faults"]["overloaded"]
    assert outcomes.get("500", 0) == stats["faults"]["api_error"]
    assert outcomes.get("dropped", 0) == stats["faults"]["drop"]
    assert 15 <= outcomes["529"] <= 45  # 10% of 300, binomial sd ~5
    assert 5 <= outcomes["500"] <= 28
    assert 5 <= outcomes["dropped"] <= 28
    # A dropped reply was produced and billed: it counts as served, and is marked dropped.
    assert stats["served"]["total"] == outcomes["200"] + outcomes["dropped"]
    assert sum(stats["served"]["dropped_by_request"].values()) == outcomes["dropped"]


def test_overloaded_and_api_error_look_like_the_real_ones(start_simulator: StartSimulator) -> None:
    overloaded = start_simulator(SimulatorConfig(models=TEST_MODELS, faults=Faults(overloaded=1.0)))
    reply = call(overloaded, body())
    assert error_of(reply) == (529, "overloaded_error", "Overloaded")
    assert reply.headers["retry-after"] == "1"
    failing = start_simulator(SimulatorConfig(models=TEST_MODELS, faults=Faults(api_error=1.0)))
    assert error_of(call(failing, body()))[:2] == (500, "api_error")


def test_dropped_connection_cuts_the_body(start_simulator: StartSimulator) -> None:
    server = start_simulator(SimulatorConfig(models=TEST_MODELS, faults=Faults(drop=1.0)))
    with pytest.raises(httpx.RemoteProtocolError):
        call(server, body())
    payload = body("streamed")
    payload["stream"] = True
    with pytest.raises(httpx.RemoteProtocolError):
        call(server, payload)
    served = server.stats()["served"]
    assert served["by_request"] == {request_digest(body()): 1, request_digest(payload): 1}


def test_slow_reply_outlasts_a_client_timeout(start_simulator: StartSimulator) -> None:
    server = start_simulator(
        SimulatorConfig(models=TEST_MODELS, faults=Faults(slow=1.0, slow_seconds=30))
    )
    with pytest.raises(httpx.ReadTimeout):
        call(server, body(), timeout=0.3)
    stats = server.stats()
    assert stats["faults"] == {"slow": 1}
    assert stats["served"]["total"] == 0


def test_mid_stream_error_event(start_simulator: StartSimulator) -> None:
    server = start_simulator(SimulatorConfig(models=TEST_MODELS, faults=Faults(stream_error=1.0)))
    payload = body("a long enough prompt to stream several deltas " * 3)
    payload["stream"] = True
    reply = call(server, payload)
    assert reply.status_code == 200
    events = [line[7:] for line in reply.text.splitlines() if line.startswith("event: ")]
    assert events[0] == "message_start"
    assert events[-1] == "error"
    assert "message_stop" not in events
    assert '"type":"overloaded_error"' in reply.text
    assert server.stats()["served"]["total"] == 0


def test_truncated_reply_is_a_complete_response_with_half_a_body(
    start_simulator: StartSimulator,
) -> None:
    server = start_simulator(SimulatorConfig(models=TEST_MODELS, faults=Faults(truncated=1.0)))
    reply = call(server, body())
    assert reply.status_code == 200
    assert int(reply.headers["content-length"]) == len(reply.content)  # ended cleanly
    with pytest.raises(json.JSONDecodeError):
        reply.json()
    payload = body("a long enough prompt to stream several deltas " * 3)
    payload["stream"] = True
    streamed = call(server, payload)
    events = [line[7:] for line in streamed.text.splitlines() if line.startswith("event: ")]
    assert events[0] == "message_start"
    assert "message_stop" not in events
    assert "error" not in events
    stats = server.stats()
    assert stats["faults"] == {"truncated": 2}
    # Produced and billed, then lost in transit: served, and marked so.
    assert stats["served"]["by_request"] == stats["served"]["dropped_by_request"]
    assert stats["served"]["total"] == 2


@pytest.mark.parametrize(("retry_after", "header"), [(1.0, "1"), (0.5, "0.5"), (None, None)])
def test_rate_limit_storm_refuses_with_or_without_retry_after(
    start_simulator: StartSimulator, retry_after: float | None, header: str | None
) -> None:
    faults = Faults(rate_limited=1.0, rate_limited_retry_after=retry_after)
    server = start_simulator(SimulatorConfig(models=TEST_MODELS, faults=faults))
    reply = call(server, body())
    assert error_of(reply)[:2] == (429, "rate_limit_error")
    assert reply.headers.get("retry-after") == header
    assert reply.headers["x-should-retry"] == "true"
    stats = server.stats()
    assert stats["faults"] == {"rate_limited": 1}
    assert stats["served"]["total"] == 0
    assert stats["in_flight"] == 0


def test_a_restarted_server_comes_back_on_its_port_with_its_state(
    start_simulator: StartSimulator,
) -> None:
    server = start_simulator()
    url = server.url
    assert call(server, body()).status_code == 200
    server.stop()
    with pytest.raises(httpx.ConnectError):
        httpx.post(f"{url}/v1/messages", json=body(), timeout=5)
    server.start()
    assert server.url == url
    assert call(server, body("again")).status_code == 200
    assert server.stats()["served"]["total"] == 2  # one simulator across the outage
