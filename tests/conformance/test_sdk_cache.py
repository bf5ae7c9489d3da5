"""Prompt caching through the official SDK: the usage fields it parses are the ones we bill."""

from __future__ import annotations

from typing import Any

import anthropic
import pytest

from pipeline.simulator import count_request
from tests.conformance.test_sdk import MODEL, make_client
from tests.conftest import StartSimulator

pytestmark = pytest.mark.conformance

# "word" is one token and single spaces are free: instructions long enough to be cached
# (Haiku 4.5 caches from 4,096 tokens).
INSTRUCTIONS = "word " * 4_500


def params(question: str, *, ttl: str | None = None) -> dict[str, Any]:
    control: dict[str, Any] = {"type": "ephemeral", **({"ttl": ttl} if ttl else {})}
    return {
        "model": MODEL,
        "max_tokens": 100,
        "system": [{"type": "text", "text": INSTRUCTIONS, "cache_control": control}],
        "messages": [{"role": "user", "content": question}],
    }


def prefix_of(request: dict[str, Any]) -> int:
    return count_request(request) - count_request({**request, "system": None})


def test_cache_write_then_read(start_simulator: StartSimulator) -> None:
    server = start_simulator()
    first, second = params("First document?", ttl="1h"), params("Second document?", ttl="1h")
    with make_client(server) as sdk:
        written = sdk.messages.create(**first).usage
        read = sdk.messages.create(**second).usage
    prefix = prefix_of(first)
    assert written.cache_creation_input_tokens == prefix
    assert written.cache_read_input_tokens == 0
    assert written.input_tokens == count_request(first) - prefix
    assert isinstance(written.cache_creation, anthropic.types.CacheCreation)
    assert written.cache_creation.ephemeral_1h_input_tokens == prefix
    assert written.cache_creation.ephemeral_5m_input_tokens == 0
    assert read.cache_read_input_tokens == prefix
    assert read.cache_creation_input_tokens == 0
    assert read.input_tokens == count_request(second) - prefix


def test_stream_final_message_carries_cache_usage(start_simulator: StartSimulator) -> None:
    server = start_simulator()
    with make_client(server) as sdk:
        sdk.messages.create(**params("Warm the cache."))
        with sdk.messages.stream(**params("Read from it.")) as stream:
            final = stream.get_final_message()
    assert final.usage.cache_read_input_tokens == prefix_of(params("Read from it."))
    assert final.usage.cache_creation_input_tokens == 0


def test_count_tokens_ignores_the_cache(start_simulator: StartSimulator) -> None:
    server = start_simulator()
    request = params("How long is this?")
    with make_client(server) as sdk:
        sdk.messages.create(**request)
        counted = sdk.messages.count_tokens(
            model=MODEL, system=request["system"], messages=request["messages"]
        )
        usage = sdk.messages.create(**request).usage
    assert usage.cache_read_input_tokens
    assert counted.input_tokens == usage.input_tokens + usage.cache_read_input_tokens
    assert counted.input_tokens == count_request(request)


def test_too_many_breakpoints_is_a_bad_request(start_simulator: StartSimulator) -> None:
    server = start_simulator()
    block = {"type": "text", "text": "Rules.", "cache_control": {"type": "ephemeral"}}
    with make_client(server) as sdk, pytest.raises(anthropic.BadRequestError) as caught:
        sdk.messages.create(**{**params("Hi"), "system": [block] * 5})
    assert caught.value.status_code == 400
    assert caught.value.api_message == (
        "A maximum of 4 blocks with cache_control may be provided. Found 5."
    )
