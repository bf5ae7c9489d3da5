"""The official SDK against the simulator as shipped, which serves MegaLLM's four model ids: the
page's own quick example (``messages.create``), plain and streamed, works with each."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import anthropic
import pytest

from pipeline.simulator import SimulatorConfig, SimulatorServer
from tests.conformance.test_sdk import make_client, reply_prefix, text_of

pytestmark = pytest.mark.conformance

GATEWAY_IDS = [
    "claude-opus-4-1-20250805",
    "claude-3.5-sonnet",
    "claude-3.7-sonnet",
    "claude-sonnet-4",
]


@pytest.fixture(scope="module")
def gateway() -> Iterator[SimulatorServer]:
    with SimulatorServer(SimulatorConfig()) as server:  # as shipped: no option given
        yield server


def request(model: str) -> dict[str, Any]:
    return {
        "model": model,
        "max_tokens": 200,
        "messages": [{"role": "user", "content": "Explain quantum computing in simple terms"}],
    }


@pytest.mark.parametrize("model", GATEWAY_IDS)
def test_messages_create_with_each_gateway_id(gateway: SimulatorServer, model: str) -> None:
    with make_client(gateway) as client:
        message = client.messages.create(**request(model))
    assert message.model == model  # the gateway's id, as sent: no alias to resolve
    assert message.stop_reason == "end_turn"
    assert text_of(message).startswith(reply_prefix(request(model)))
    assert message.usage.input_tokens > 0


@pytest.mark.parametrize("model", GATEWAY_IDS)
def test_messages_stream_with_each_gateway_id(gateway: SimulatorServer, model: str) -> None:
    with make_client(gateway) as client, client.messages.stream(**request(model)) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert final.model == model
    assert text == text_of(final)
    assert text.startswith(reply_prefix(request(model)))


def test_an_anthropic_id_is_a_404_on_the_gateway(gateway: SimulatorServer) -> None:
    with make_client(gateway) as client:
        with pytest.raises(anthropic.NotFoundError) as caught:
            client.messages.create(**request("claude-haiku-4-5"))
        served = {model.id for model in client.models.list()}
    assert caught.value.status_code == 404
    assert served == set(GATEWAY_IDS)
