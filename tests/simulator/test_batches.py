"""Message Batches: the batch object, its life on the injected clock, results and limits."""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

import httpx
import pytest

from pipeline.cli import EXIT_USAGE, build_parser, main
from pipeline.cli.simulate import simulator_config
from pipeline.simulator import Batches, ConfigError, Limits, SimulatorConfig, count_request
from pipeline.simulator.server import SimulatorServer
from tests.conftest import TEST_MODELS, FakeClock, StartSimulator
from tests.simulator.support import MODEL, VERSION, body, call, error_of

WALL = 1_700_000_000.0  # 2023-11-14T22:13:20Z
CREATED = "2023-11-14T22:13:20.000000Z"
BATCHES = "/v1/messages/batches"
BATCH_KEYS = {
    "id",
    "type",
    "processing_status",
    "request_counts",
    "ended_at",
    "created_at",
    "expires_at",
    "archived_at",
    "cancel_initiated_at",
    "results_url",
}


def requests(n: int, **params: Any) -> list[dict[str, Any]]:
    return [{"custom_id": f"doc-{i}", "params": body(f"document {i}", **params)} for i in range(n)]


def send(
    server: SimulatorServer, method: str, path: str, payload: Any = None, *, key: str | None = None
) -> httpx.Response:
    headers = {"x-api-key": key or server.api_key, "anthropic-version": VERSION}
    return httpx.request(method, f"{server.url}{path}", json=payload, headers=headers, timeout=30)


def create(server: SimulatorServer, entries: list[dict[str, Any]], **kw: Any) -> dict[str, Any]:
    response = send(server, "POST", BATCHES, {"requests": entries}, **kw)
    assert response.status_code == 200, response.text
    batch: dict[str, Any] = response.json()
    return batch


def retrieve(server: SimulatorServer, batch_id: str) -> dict[str, Any]:
    response = send(server, "GET", f"{BATCHES}/{batch_id}")
    assert response.status_code == 200, response.text
    batch: dict[str, Any] = response.json()
    return batch


def results(server: SimulatorServer, batch_id: str) -> list[dict[str, Any]]:
    response = send(server, "GET", f"{BATCHES}/{batch_id}/results")
    assert response.status_code == 200, response.text
    assert response.text.endswith("\n")
    return [json.loads(line) for line in response.text.splitlines()]


def counts(**nonzero: int) -> dict[str, int]:
    kinds = ("processing", "succeeded", "errored", "canceled", "expired")
    return {kind: nonzero.get(kind, 0) for kind in kinds}


def start(start_simulator: StartSimulator, clock: FakeClock, **batches: Any) -> SimulatorServer:
    config = SimulatorConfig(models=TEST_MODELS, batches=Batches(**batches))
    return start_simulator(config, clock=clock, wall=lambda: WALL)


def test_a_new_batch_has_the_real_shape(
    start_simulator: StartSimulator, fake_clock: FakeClock
) -> None:
    server = start(start_simulator, fake_clock)
    batch = create(server, requests(3))
    assert set(batch) == BATCH_KEYS
    assert batch["id"].startswith("msgbatch_")
    assert batch["type"] == "message_batch"
    assert batch["processing_status"] == "in_progress"
    assert batch["request_counts"] == counts(processing=3)
    assert batch["created_at"] == CREATED
    assert batch["expires_at"] == "2023-11-15T22:13:20.000000Z"  # 24 h later
    assert batch["ended_at"] is batch["results_url"] is batch["cancel_initiated_at"] is None
    assert batch["archived_at"] is None
    assert retrieve(server, batch["id"]) == batch


def test_a_batch_ends_after_its_processing_time(
    start_simulator: StartSimulator, fake_clock: FakeClock
) -> None:
    server = start(start_simulator, fake_clock, processing_seconds=90)
    batch = create(server, requests(4))
    fake_clock.advance(89.9)
    assert retrieve(server, batch["id"])["processing_status"] == "in_progress"
    assert error_of(send(server, "GET", f"{BATCHES}/{batch['id']}/results"))[:2] == (
        400,
        "invalid_request_error",
    )
    fake_clock.advance(0.1)
    ended = retrieve(server, batch["id"])
    assert ended["processing_status"] == "ended"
    assert ended["request_counts"] == counts(succeeded=4)
    assert ended["ended_at"] == "2023-11-14T22:14:50.000000Z"
    assert ended["results_url"] == f"{server.url}{BATCHES}/{batch['id']}/results"


def test_results_are_the_replies_of_v1_messages_in_another_order(
    start_simulator: StartSimulator, fake_clock: FakeClock
) -> None:
    server = start(start_simulator, fake_clock)
    sent = requests(12)
    batch = create(server, sent)
    fake_clock.advance(5)
    lines = results(server, batch["id"])
    assert [line["custom_id"] for line in lines] != [entry["custom_id"] for entry in sent]
    assert sorted(line["custom_id"] for line in lines) == sorted(e["custom_id"] for e in sent)
    by_id = {line["custom_id"]: line["result"] for line in lines}
    for entry in sent[:3]:
        result = by_id[entry["custom_id"]]
        assert result["type"] == "succeeded"
        message = result["message"]
        direct = call(server, entry["params"]).json()
        assert message["id"].startswith("msg_")
        assert (message["content"], message["stop_reason"]) == (
            direct["content"],
            direct["stop_reason"],
        )
        assert message["usage"]["input_tokens"] == count_request(entry["params"])
        assert message["usage"]["output_tokens"] == direct["usage"]["output_tokens"]
        assert message["usage"]["service_tier"] == "batch"
    assert results(server, batch["id"]) == lines  # the same file every time


def test_params_are_validated_when_processed_not_when_created(
    start_simulator: StartSimulator, fake_clock: FakeClock
) -> None:
    server = start(start_simulator, fake_clock)
    no_max = {k: v for k, v in body("x").items() if k != "max_tokens"}
    entries = [
        {"custom_id": "fine", "params": body("x")},
        {"custom_id": "no-max", "params": no_max},
        {"custom_id": "unknown-model", "params": body("x", model="claude-nonexistent-1")},
    ]
    batch = create(server, entries)  # accepted: params are checked later
    fake_clock.advance(5)
    assert retrieve(server, batch["id"])["request_counts"] == counts(succeeded=1, errored=2)
    by_id = {line["custom_id"]: line["result"] for line in results(server, batch["id"])}
    for custom_id, params in (("no-max", no_max), ("unknown-model", entries[2]["params"])):
        error = by_id[custom_id]["error"]
        direct = call(server, params).json()
        assert error["type"] == "error"
        assert error["error"] == direct["error"]
        assert error["request_id"].startswith("req_")


TOO_LONG = "x" * 65


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ([1], "Request body must be a JSON object"),
        ({}, "requests: Field required"),
        ({"requests": {}}, "requests: Input should be a valid list"),
        ({"requests": []}, "requests: List should have at least 1 item after validation, not 0"),
        ({"requests": requests(1), "metadata": {}}, "metadata: Extra inputs are not permitted"),
        ({"requests": [5]}, "requests.0: Input should be a valid dictionary"),
        ({"requests": [{"params": body()}]}, "requests.0.custom_id: Field required"),
        (
            {"requests": [{"custom_id": TOO_LONG, "params": body()}]},
            "requests.0.custom_id: String should match pattern '^[a-zA-Z0-9_-]{1,64}$'",
        ),
        (
            {"requests": [*requests(1), {"custom_id": "doc 2", "params": body()}]},
            "requests.1.custom_id: String should match pattern '^[a-zA-Z0-9_-]{1,64}$'",
        ),
        ({"requests": [{"custom_id": "a"}]}, "requests.0.params: Field required"),
        (
            {"requests": [{"custom_id": "a", "params": "hi"}]},
            "requests.0.params: Input should be a valid dictionary",
        ),
        (
            {"requests": [{"custom_id": "a", "params": body(), "priority": 1}]},
            "requests.0.priority: Extra inputs are not permitted",
        ),
        (
            {"requests": [{"custom_id": "a", "params": body(stream=True)}]},
            "requests.0.params.stream: Input should be False",
        ),
        (
            {"requests": [*requests(2), requests(1)[0]]},
            "requests: custom_id must be unique within a batch; 'doc-0' is repeated",
        ),
    ],
)
def test_the_batch_itself_is_checked_at_creation(
    simulator: SimulatorServer, payload: Any, message: str
) -> None:
    response = send(simulator, "POST", BATCHES, payload)
    assert error_of(response) == (400, "invalid_request_error", message)


def test_at_most_100_000_requests(simulator: SimulatorServer) -> None:
    response = send(simulator, "POST", BATCHES, {"requests": [{}] * 100_001})
    assert error_of(response) == (
        400,
        "invalid_request_error",
        "requests: List should have at most 100,000 items after validation, not 100001",
    )


def test_size_and_count_limits_are_configurable(
    start_simulator: StartSimulator, fake_clock: FakeClock
) -> None:
    server = start(start_simulator, fake_clock, max_requests=3, max_body_bytes=2_000)
    assert error_of(send(server, "POST", BATCHES, {"requests": requests(4)}))[0] == 400
    assert create(server, requests(3))["request_counts"] == counts(processing=3)
    big = send(server, "POST", BATCHES, {"requests": requests(1, system="word " * 500)})
    assert error_of(big)[:2] == (413, "request_too_large")
    # A batch body may be far larger than a single Messages request (32 MB).
    assert Batches().max_body_bytes == 256 * 1024 * 1024 > 32 * 1024 * 1024


def test_errored_and_expired_draws_are_reproducible(
    start_simulator: StartSimulator, fake_clock: FakeClock
) -> None:
    def fates(seed: int) -> dict[str, str]:
        server = start(start_simulator, fake_clock, errored=0.3, expired=0.2, seed=seed)
        batch = create(server, requests(200))
        fake_clock.advance(5)
        lines = results(server, batch["id"])
        ended = retrieve(server, batch["id"])
        tally = Counter(line["result"]["type"] for line in lines)
        assert ended["request_counts"] == counts(**tally)
        for line in lines:
            if line["result"]["type"] == "errored":
                assert line["result"]["error"]["error"] == {
                    "type": "api_error",
                    "message": "Internal server error",
                }
        return {line["custom_id"]: line["result"]["type"] for line in lines}

    first = fates(seed=5)
    tally = Counter(first.values())
    assert tally["errored"] / 200 == pytest.approx(0.3, abs=0.1)
    assert tally["expired"] / 200 == pytest.approx(0.2, abs=0.1)
    assert tally["succeeded"] + tally["errored"] + tally["expired"] == 200
    assert fates(seed=5) == first
    assert fates(seed=6) != first


def test_cancel_keeps_what_finished_and_cancels_the_rest(
    start_simulator: StartSimulator, fake_clock: FakeClock
) -> None:
    server = start(start_simulator, fake_clock, processing_seconds=100, cancel_seconds=2)
    batch = create(server, requests(40))
    fake_clock.advance(40)
    canceling = send(server, "POST", f"{BATCHES}/{batch['id']}/cancel").json()
    assert canceling["processing_status"] == "canceling"
    assert canceling["cancel_initiated_at"] == "2023-11-14T22:14:00.000000Z"
    assert canceling["request_counts"] == counts(processing=40)
    again = send(server, "POST", f"{BATCHES}/{batch['id']}/cancel").json()
    assert again["cancel_initiated_at"] == canceling["cancel_initiated_at"]
    fake_clock.advance(1.9)
    assert retrieve(server, batch["id"])["processing_status"] == "canceling"
    fake_clock.advance(0.1)
    ended = retrieve(server, batch["id"])
    assert ended["processing_status"] == "ended"
    assert ended["ended_at"] == "2023-11-14T22:14:02.000000Z"
    tally = ended["request_counts"]
    assert tally["canceled"] > 0
    assert tally["succeeded"] > 0
    assert tally["succeeded"] + tally["canceled"] == 40
    kinds = Counter(line["result"]["type"] for line in results(server, batch["id"]))
    assert kinds == {"succeeded": tally["succeeded"], "canceled": tally["canceled"]}
    late = send(server, "POST", f"{BATCHES}/{batch['id']}/cancel")
    assert error_of(late)[:2] == (400, "invalid_request_error")
    assert server.stats()["batches"]["canceled"] == 1


def test_requests_unfinished_after_24_hours_expire(
    start_simulator: StartSimulator, fake_clock: FakeClock
) -> None:
    server = start(start_simulator, fake_clock, processing_seconds=48 * 3600)
    batch = create(server, requests(40))
    fake_clock.advance(24 * 3600)
    ended = retrieve(server, batch["id"])
    assert ended["processing_status"] == "ended"
    assert ended["ended_at"] == ended["expires_at"]
    tally = ended["request_counts"]
    assert tally["expired"] > 0
    assert tally["succeeded"] > 0
    assert tally["expired"] + tally["succeeded"] == 40


def test_results_are_kept_29_days(start_simulator: StartSimulator, fake_clock: FakeClock) -> None:
    server = start(start_simulator, fake_clock)
    batch = create(server, requests(2))
    fake_clock.advance(29 * 24 * 3600 - 1)
    assert len(results(server, batch["id"])) == 2
    assert retrieve(server, batch["id"])["archived_at"] is None
    fake_clock.advance(1)
    assert retrieve(server, batch["id"])["archived_at"] == "2023-12-13T22:13:20.000000Z"
    gone = send(server, "GET", f"{BATCHES}/{batch['id']}/results")
    assert error_of(gone)[:2] == (404, "not_found_error")


def test_delete_only_once_ended(start_simulator: StartSimulator, fake_clock: FakeClock) -> None:
    server = start(start_simulator, fake_clock)
    batch = create(server, requests(2))
    path = f"{BATCHES}/{batch['id']}"
    assert error_of(send(server, "DELETE", path))[:2] == (400, "invalid_request_error")
    fake_clock.advance(5)
    deleted = send(server, "DELETE", path)
    assert deleted.json() == {"id": batch["id"], "type": "message_batch_deleted"}
    for method, where in (("GET", path), ("GET", f"{path}/results"), ("DELETE", path)):
        assert error_of(send(server, method, where))[:2] == (404, "not_found_error")


def test_batches_are_private_to_their_key(start_simulator: StartSimulator) -> None:
    server = start_simulator(
        SimulatorConfig(models=TEST_MODELS, api_keys=frozenset({"key-a", "key-b"}))
    )
    batch = create(server, requests(1), key="key-a")
    other = send(server, "GET", f"{BATCHES}/{batch['id']}", key="key-b")
    assert error_of(other)[:2] == (404, "not_found_error")
    assert send(server, "GET", BATCHES, key="key-b").json()["data"] == []
    missing = send(server, "GET", f"{BATCHES}/msgbatch_nope", key="key-a")
    assert error_of(missing)[:2] == (404, "not_found_error")
    unauthenticated = send(server, "GET", BATCHES, key="wrong")
    assert error_of(unauthenticated)[:2] == (401, "authentication_error")


def test_list_is_newest_first_and_paginates(
    start_simulator: StartSimulator, fake_clock: FakeClock
) -> None:
    server = start(start_simulator, fake_clock)
    made = []
    for _ in range(5):
        made.append(create(server, requests(1))["id"])
        fake_clock.advance(1)
    newest_first = made[::-1]
    everything = send(server, "GET", BATCHES).json()
    assert [b["id"] for b in everything["data"]] == newest_first
    assert everything["has_more"] is False
    first = send(server, "GET", f"{BATCHES}?limit=2").json()
    assert [b["id"] for b in first["data"]] == newest_first[:2]
    assert (first["first_id"], first["last_id"], first["has_more"]) == (
        newest_first[0],
        newest_first[1],
        True,
    )
    after = send(server, "GET", f"{BATCHES}?limit=2&after_id={first['last_id']}").json()
    assert [b["id"] for b in after["data"]] == newest_first[2:4]
    before = send(server, "GET", f"{BATCHES}?limit=2&before_id={newest_first[4]}").json()
    assert [b["id"] for b in before["data"]] == newest_first[2:4]
    assert error_of(send(server, "GET", f"{BATCHES}?limit=0"))[0] == 400


def test_batches_take_nothing_from_the_per_minute_limits(
    start_simulator: StartSimulator, fake_clock: FakeClock
) -> None:
    limits = Limits(requests_per_minute=1, input_tokens_per_minute=50)
    config = SimulatorConfig(
        models=TEST_MODELS, limits=limits, batches=Batches(processing_seconds=1)
    )
    server = start_simulator(config, clock=fake_clock)
    batch = create(server, requests(30))
    for _ in range(5):
        assert retrieve(server, batch["id"])["processing_status"] == "in_progress"
    fake_clock.advance(1)
    assert retrieve(server, batch["id"])["request_counts"] == counts(succeeded=30)
    assert len(results(server, batch["id"])) == 30
    assert call(server, body("one request")).status_code == 200  # the bucket is untouched
    assert call(server, body("and a second")).status_code == 429


def test_batches_read_and_write_the_prompt_cache(
    start_simulator: StartSimulator, fake_clock: FakeClock
) -> None:
    server = start(start_simulator, fake_clock)
    shared = [{"type": "text", "text": "word " * 1_500, "cache_control": {"type": "ephemeral"}}]
    batch = create(server, requests(5, system=shared))
    fake_clock.advance(5)
    # Nobody polls the batch: it has ended, so it has used the cache before this request.
    later = call(server, body("After the batch.", system=shared)).json()["usage"]
    prefix = count_request(body("x", system=shared)) - count_request(body("x"))
    assert later["cache_read_input_tokens"] == prefix
    usages = [line["result"]["message"]["usage"] for line in results(server, batch["id"])]
    assert [u["cache_creation_input_tokens"] for u in usages] == [prefix, 0, 0, 0, 0]
    assert [u["cache_read_input_tokens"] for u in usages] == [0, prefix, prefix, prefix, prefix]
    stats = server.stats()
    assert stats["cache"]["read_requests"] == 5
    assert stats["batches"]["tokens"]["cache_read"] == 4 * prefix
    assert stats["batches"]["tokens"]["input"] == sum(u["input_tokens"] for u in usages)


def test_stats_count_batches_requests_and_results(
    start_simulator: StartSimulator, fake_clock: FakeClock
) -> None:
    server = start(start_simulator, fake_clock)
    first = create(server, requests(3))
    create(server, requests(2))
    fake_clock.advance(5)
    results(server, first["id"])
    results(server, first["id"])
    stats = server.stats()
    assert stats["batches"]["created"] == 2
    assert stats["batches"]["requests"] == 5
    assert stats["batches"]["results_served"] == 6
    assert stats["batches"]["results_by_type"] == {"succeeded": 6}
    assert stats["by_endpoint"]["batch_results"] == 2
    assert httpx.post(f"{server.url}/_simulator/reset").json() == {"reset": True}
    assert send(server, "GET", BATCHES).json()["data"] == []
    assert server.stats()["batches"]["created"] == 0


@pytest.mark.parametrize(
    ("settings", "field"),
    [
        ({"errored": 0.7, "expired": 0.5}, "add up to more than 1"),
        ({"errored": 1.5}, "batches.errored"),
        ({"processing_seconds": -1}, "batches.processing_seconds"),
        ({"max_requests": 0}, "batches.max_requests"),
    ],
)
def test_batch_settings_are_checked_at_load(settings: dict[str, Any], field: str) -> None:
    with pytest.raises(ConfigError, match=field):
        Batches(**settings)


def test_cli_flags_set_the_batch_settings() -> None:
    argv = ["simulate", "--batch-seconds", "60", "--batch-errored", "0.1"]
    config = simulator_config(
        build_parser().parse_args([*argv, "--batch-expired", "0.05", "--seed", "4"])
    )
    assert config.batches == Batches(processing_seconds=60, errored=0.1, expired=0.05, seed=4)
    assert main(["simulate", "--batch-errored", "2"]) == EXIT_USAGE


def test_model_in_batch_params_may_be_an_alias(
    start_simulator: StartSimulator, fake_clock: FakeClock
) -> None:
    server = start(start_simulator, fake_clock)
    batch = create(server, [{"custom_id": "a", "params": body("x", model=MODEL)}])
    fake_clock.advance(5)
    (line,) = results(server, batch["id"])
    assert line["result"]["message"]["model"] == "claude-sonnet-4-5-20250929"
