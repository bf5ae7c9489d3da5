"""Prompt caching: what is cached, for how long, how it is billed and rate limited."""

from __future__ import annotations

import json
import math
from typing import Any

import httpx
import pytest

from pipeline.simulator import ConfigError, Limits, SimulatorConfig, SimulatorServer, count_request
from pipeline.simulator.cache import PromptCache
from pipeline.simulator.service import Simulator
from pipeline.simulator.validation import validate_messages
from tests.conftest import TEST_MODELS, FakeClock, StartSimulator
from tests.simulator.support import MODEL, body, call, error_of

EPHEMERAL = {"type": "ephemeral"}
# "word" is one token and single spaces are free: 1,200 tokens of shared instructions.
LONG = "word " * 1_200


def system(text: str = LONG, **control: Any) -> list[dict[str, Any]]:
    return [{"type": "text", "text": text, "cache_control": {**EPHEMERAL, **control}}]


def cached_body(question: str = "Summarize the first document.", **extra: Any) -> dict[str, Any]:
    return body(question, system=system(), **extra)


def usage_of(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code == 200, response.text
    data: dict[str, Any] = response.json()["usage"]
    return data


def prefix_tokens(payload: dict[str, Any]) -> int:
    """Tokens up to and including the system prompt: the request minus its messages."""
    return count_request(payload) - count_request({**payload, "system": None, "tools": None})


def test_first_request_writes_the_prefix_and_the_next_reads_it(
    start_simulator: StartSimulator,
) -> None:
    server = start_simulator()
    first, second = cached_body("Summarize document one."), cached_body("Now document two.")
    written = usage_of(call(server, first))
    prefix = prefix_tokens(first)
    assert prefix > 1_024
    assert written["cache_creation_input_tokens"] == prefix
    assert written["cache_read_input_tokens"] == 0
    assert written["input_tokens"] == count_request(first) - prefix
    assert written["cache_creation"] == {
        "ephemeral_5m_input_tokens": prefix,
        "ephemeral_1h_input_tokens": 0,
    }
    read = usage_of(call(server, second))
    assert read["cache_read_input_tokens"] == prefix
    assert read["cache_creation_input_tokens"] == 0
    assert read["input_tokens"] == count_request(second) - prefix
    stats = server.stats()["cache"]
    assert stats == {
        "read_requests": 1,
        "read_tokens": prefix,
        "write_requests": 1,
        "write_tokens": prefix,
    }


def test_a_prefix_below_the_minimum_is_not_cached(start_simulator: StartSimulator) -> None:
    short = body("Question?", system=system("Answer briefly. " * 100))
    assert prefix_tokens(short) < 1_024
    server = start_simulator()
    for _ in range(2):
        usage = usage_of(call(server, short))
        assert usage["input_tokens"] == count_request(short)
        assert usage["cache_creation_input_tokens"] == usage["cache_read_input_tokens"] == 0
    lowered = start_simulator(SimulatorConfig(models=TEST_MODELS, cache_min_tokens=100))
    assert usage_of(call(lowered, short))["cache_creation_input_tokens"] == prefix_tokens(short)
    assert usage_of(call(lowered, short))["cache_read_input_tokens"] == prefix_tokens(short)


def test_each_model_caches_from_its_own_minimum(start_simulator: StartSimulator) -> None:
    """The catalogue's figure per model: 1,200 tokens are cached on Sonnet 4.5 (1,024) but
    not on Haiku 4.5 (4,096), whose minimum a 4,200-token prefix passes."""
    server = start_simulator()
    sonnet = cached_body()
    haiku = {**cached_body(), "model": "claude-haiku-4-5"}
    assert 1_024 < prefix_tokens(sonnet) < 4_096
    assert usage_of(call(server, sonnet))["cache_creation_input_tokens"] == prefix_tokens(sonnet)
    assert usage_of(call(server, haiku))["cache_creation_input_tokens"] == 0
    longer = {**haiku, "system": system("word " * 4_200)}
    assert usage_of(call(server, longer))["cache_creation_input_tokens"] == prefix_tokens(longer)
    assert usage_of(call(server, longer))["cache_read_input_tokens"] == prefix_tokens(longer)


def test_entries_expire_after_their_ttl_and_each_read_renews_it(
    start_simulator: StartSimulator, fake_clock: FakeClock
) -> None:
    server = start_simulator(clock=fake_clock)
    assert usage_of(call(server, cached_body()))["cache_creation_input_tokens"] > 0
    for _ in range(3):  # 4m59s apart: each read starts the five minutes again
        fake_clock.advance(299)
        assert usage_of(call(server, cached_body()))["cache_read_input_tokens"] > 0
    fake_clock.advance(300)
    expired = usage_of(call(server, cached_body()))
    assert expired["cache_read_input_tokens"] == 0
    assert expired["cache_creation_input_tokens"] > 0


def test_one_hour_ttl(start_simulator: StartSimulator, fake_clock: FakeClock) -> None:
    server = start_simulator(clock=fake_clock)
    hour = body("Question?", system=system(ttl="1h"))
    created = usage_of(call(server, hour))
    assert created["cache_creation"]["ephemeral_1h_input_tokens"] == prefix_tokens(hour)
    assert created["cache_creation"]["ephemeral_5m_input_tokens"] == 0
    fake_clock.advance(3_599)
    assert usage_of(call(server, hour))["cache_read_input_tokens"] == prefix_tokens(hour)
    fake_clock.advance(3_600)
    assert usage_of(call(server, hour))["cache_read_input_tokens"] == 0


def test_entries_are_private_to_a_key_and_a_model(start_simulator: StartSimulator) -> None:
    server = start_simulator(
        SimulatorConfig(models=TEST_MODELS, api_keys=frozenset({"key-a", "key-b"}))
    )
    assert usage_of(call(server, cached_body(), key="key-a"))["cache_creation_input_tokens"] > 0
    assert usage_of(call(server, cached_body(), key="key-b"))["cache_read_input_tokens"] == 0
    other_model = {**cached_body(), "model": "claude-haiku-4-5"}
    assert usage_of(call(server, other_model, key="key-a"))["cache_read_input_tokens"] == 0
    assert usage_of(call(server, cached_body(), key="key-a"))["cache_read_input_tokens"] > 0


def test_a_change_before_the_breakpoint_misses_and_one_after_it_hits(
    start_simulator: StartSimulator,
) -> None:
    server = start_simulator()
    usage_of(call(server, cached_body()))
    changed = body("Summarize the first document.", system=system(LONG + "Be brief."))
    assert usage_of(call(server, changed))["cache_read_input_tokens"] == 0
    after = cached_body("A different question after the cached prefix.", temperature=0.5)
    assert usage_of(call(server, after))["cache_read_input_tokens"] == prefix_tokens(after)


def test_tools_come_first_in_the_prefix(start_simulator: StartSimulator) -> None:
    tool = {"name": "extract", "input_schema": {"type": "object"}}
    server = start_simulator()
    usage_of(call(server, cached_body(tools=[tool])))
    renamed = cached_body(tools=[{**tool, "name": "extract_fields"}])
    assert usage_of(call(server, renamed))["cache_read_input_tokens"] == 0


def test_several_breakpoints_read_the_longest_cached_prefix_and_write_the_rest(
    start_simulator: StartSimulator,
) -> None:
    tool = {
        "name": "extract",
        "description": LONG,
        "input_schema": {"type": "object"},
        "cache_control": EPHEMERAL,
    }
    server = start_simulator()
    first = body("Question?", tools=[tool], system=system("First instructions. " * 50))
    written = usage_of(call(server, first))
    assert written["cache_creation_input_tokens"] == prefix_tokens(first)
    second = body("Question?", tools=[tool], system=system("Second instructions. " * 50))
    tools_only = count_request({**second, "system": None}) - count_request(
        {**second, "system": None, "tools": None}
    )
    assert tools_only >= 1_024
    usage = usage_of(call(server, second))
    assert usage["cache_read_input_tokens"] == tools_only
    assert usage["cache_creation_input_tokens"] == prefix_tokens(second) - tools_only


def test_lookback_finds_an_earlier_breakpoint_of_a_growing_conversation(
    start_simulator: StartSimulator,
) -> None:
    server = start_simulator()
    opening = {
        "role": "user",
        "content": [{"type": "text", "text": LONG, "cache_control": EPHEMERAL}],
    }
    first = {"model": MODEL, "max_tokens": 50, "messages": [opening]}
    written = usage_of(call(server, first))["cache_creation_input_tokens"]
    assert written == count_request(first)
    turns = [
        {"role": "assistant", "content": "Noted."},
        {
            "role": "user",
            "content": [{"type": "text", "text": "Now summarize.", "cache_control": EPHEMERAL}],
        },
    ]
    plain_opening = {"role": "user", "content": [{"type": "text", "text": LONG}]}
    second = {"model": MODEL, "max_tokens": 50, "messages": [plain_opening, *turns]}
    usage = usage_of(call(server, second))
    assert usage["cache_read_input_tokens"] == written
    assert usage["cache_creation_input_tokens"] == count_request(second) - written
    assert usage["input_tokens"] == 0


def test_top_level_cache_control_marks_the_last_block(start_simulator: StartSimulator) -> None:
    server = start_simulator()
    whole = body(LONG, cache_control=EPHEMERAL)
    assert usage_of(call(server, whole))["cache_creation_input_tokens"] == count_request(whole)
    again = usage_of(call(server, whole))
    assert (again["cache_read_input_tokens"], again["input_tokens"]) == (count_request(whole), 0)


def test_cache_reads_do_not_count_against_input_tokens_per_minute(
    start_simulator: StartSimulator, fake_clock: FakeClock
) -> None:
    first, second = cached_body("Document one."), cached_body("Document two.")
    total, rest = count_request(first), count_request(second) - prefix_tokens(second)
    limit = total + rest + 5  # room for one full request and one read from the cache
    assert limit < 2 * total  # ... but not for two full ones
    server = start_simulator(
        SimulatorConfig(models=TEST_MODELS, limits=Limits(input_tokens_per_minute=limit)),
        clock=fake_clock,
    )
    assert usage_of(call(server, first))["cache_creation_input_tokens"] > 0
    read = call(server, second)
    assert usage_of(read)["cache_read_input_tokens"] > 0
    uncached = call(server, body("Another document. " * 40))
    assert error_of(uncached)[:2] == (429, "rate_limit_error")
    assert server.stats()["peaks"]["input_tokens_per_minute"] == total + rest


def test_count_tokens_returns_the_total_whatever_is_cached(start_simulator: StartSimulator) -> None:
    server = start_simulator()
    payload = cached_body()
    usage_of(call(server, payload))
    usage = usage_of(call(server, payload))
    counted = call(
        server,
        {k: v for k, v in payload.items() if k != "max_tokens"},
        path="/v1/messages/count_tokens",
    ).json()
    total = usage["input_tokens"] + usage["cache_read_input_tokens"]
    assert usage["cache_read_input_tokens"] > 0
    assert counted == {"input_tokens": total} == {"input_tokens": count_request(payload)}


def test_stream_message_start_carries_the_cache_fields(start_simulator: StartSimulator) -> None:
    server = start_simulator()
    written = usage_of(call(server, cached_body("First.")))
    read = usage_of(call(server, cached_body("Second.")))
    streamed = call(server, {**cached_body("Second."), "stream": True})
    assert streamed.status_code == 200
    start = next(
        json.loads(line[len("data: ") :])
        for line in streamed.text.splitlines()
        if line.startswith("data: ") and '"message_start"' in line
    )
    usage = start["message"]["usage"]
    keys = ("input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens")
    assert {k: usage[k] for k in keys} == {k: read[k] for k in keys}
    assert usage["cache_read_input_tokens"] == written["cache_creation_input_tokens"]
    assert usage["cache_creation"] == read["cache_creation"]


def test_token_scale_applies_to_every_part_of_the_split(start_simulator: StartSimulator) -> None:
    server = start_simulator(SimulatorConfig(models=TEST_MODELS, token_scale=1.3))
    payload = cached_body()
    usage = usage_of(call(server, payload))
    parts = usage["input_tokens"] + usage["cache_creation_input_tokens"]
    assert parts == math.ceil(count_request(payload) * 1.3)
    assert usage["cache_creation_input_tokens"] == math.ceil(prefix_tokens(payload) * 1.3)


def test_the_cache_changes_only_when_a_reply_is_produced(fake_clock: FakeClock) -> None:
    sim = Simulator(clock=fake_clock)
    key = sorted(sim.config.api_keys)[0]
    request = validate_messages(cached_body())
    failed = sim.admit(request, api_key=key)
    sim.finish(failed, output_tokens=0, refund_input=True)  # a 529 or a client gone: no reply
    first, concurrent = sim.admit(request, api_key=key), sim.admit(request, api_key=key)
    assert first.billed.cache_creation_input_tokens > 0
    assert concurrent.billed.cache_creation_input_tokens > 0  # the first has not finished
    sim.served(first)
    assert sim.admit(request, api_key=key).billed.cache_read_input_tokens > 0


def test_unmarked_requests_are_never_cached() -> None:
    cache = PromptCache(min_tokens=1)
    plain = body(LONG, system=LONG)
    plan = cache.plan("scope", plain, now=0.0)
    cache.commit(plan, now=0.0)
    assert len(cache) == 0
    assert cache.plan("scope", plain, now=0.0).usage.input_tokens == count_request(plain)


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (
            body(
                "Hi", system=[{"type": "text", "text": "x", "cache_control": {"type": "lasting"}}]
            ),
            "system.0.cache_control.type: Input should be 'ephemeral'",
        ),
        (
            body("Hi", system=system("x", ttl="10m")),
            "system.0.cache_control.ttl: Input should be '5m' or '1h'",
        ),
        (
            body("Hi", system=system("x", scope="global")),
            "system.0.cache_control.scope: Extra inputs are not permitted",
        ),
        (
            body("Hi", cache_control={"type": "persistent"}),
            "cache_control.type: Input should be 'ephemeral'",
        ),
        (
            {
                "model": MODEL,
                "max_tokens": 10,
                "messages": [
                    {"role": "user", "content": [{"type": "text", "text": "x", "cache_control": 5}]}
                ],
            },
            "messages.0.content.0.cache_control: Input should be a valid dictionary",
        ),
        (
            body(
                "Hi",
                tools=[
                    {"name": "t", "input_schema": {"type": "object"}, "cache_control": {"type": 1}}
                ],
            ),
            "tools.0.custom.cache_control.type: Input should be 'ephemeral'",
        ),
        (
            body(
                "Hi", system=[*system("a"), *system("b"), *system("c"), *system("d"), *system("e")]
            ),
            "A maximum of 4 blocks with cache_control may be provided. Found 5.",
        ),
        (
            body(
                "Hi",
                system=[*system("a"), *system("b"), *system("c"), *system("d")],
                cache_control=EPHEMERAL,
            ),
            "A maximum of 4 blocks with cache_control may be provided. Found 5.",
        ),
    ],
)
def test_cache_control_is_validated(
    simulator: SimulatorServer, payload: dict[str, Any], message: str
) -> None:
    counted = {k: v for k, v in payload.items() if k != "max_tokens"}
    for path, sent in (("/v1/messages", payload), ("/v1/messages/count_tokens", counted)):
        assert error_of(call(simulator, sent, path=path)) == (400, "invalid_request_error", message)


def test_four_breakpoints_and_a_marker_on_the_last_block_are_accepted(
    start_simulator: StartSimulator,
) -> None:
    server = start_simulator()
    four = [*system("a"), *system("b"), *system("c"), *system("d")]
    assert call(server, body("Hi", system=four)).status_code == 200
    # The top-level marker falls on a block already marked: still four breakpoints.
    marked_last = {
        "model": MODEL,
        "max_tokens": 10,
        "system": four[:3],
        "messages": [
            {"role": "user", "content": [{"type": "text", "text": "x", "cache_control": EPHEMERAL}]}
        ],
        "cache_control": EPHEMERAL,
    }
    assert call(server, marked_last).status_code == 200


@pytest.mark.parametrize("minimum", [0, -5, 1.5, True])
def test_cache_min_tokens_is_checked_at_load(minimum: Any) -> None:
    with pytest.raises(ConfigError, match="cache_min_tokens"):
        SimulatorConfig(models=TEST_MODELS, cache_min_tokens=minimum)
