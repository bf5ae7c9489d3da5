"""Bad requests get the real API's status, error type and wording."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from pipeline.simulator import SimulatorServer
from tests.simulator.support import MODEL, body, call, error_of

USER = {"role": "user", "content": "hi"}


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ({"model": MODEL, "messages": [USER]}, "max_tokens: Field required"),
        (
            {"model": MODEL, "max_tokens": 0, "messages": [USER]},
            "max_tokens: Input should be greater than or equal to 1",
        ),
        (
            {"model": MODEL, "max_tokens": "9", "messages": [USER]},
            "max_tokens: Input should be a valid integer",
        ),
        ({"max_tokens": 10, "messages": [USER]}, "model: Field required"),
        ({"model": MODEL, "max_tokens": 10}, "messages: Field required"),
        (
            {"model": MODEL, "max_tokens": 10, "messages": []},
            "messages: at least one message is required",
        ),
        (
            {"model": MODEL, "max_tokens": 10, "messages": [{"role": "system", "content": "x"}]},
            "messages.0.role: Input should be 'user' or 'assistant'",
        ),
        (
            {"model": MODEL, "max_tokens": 10, "messages": [{"role": "assistant", "content": "x"}]},
            'messages: first message must use the "user" role',
        ),
        (
            {"model": MODEL, "max_tokens": 10, "messages": [{"role": "user", "content": ""}]},
            "messages.0: all messages must have non-empty content except for the optional "
            "final assistant message",
        ),
        (
            {
                "model": MODEL,
                "max_tokens": 10,
                "messages": [{"role": "user", "content": [{"type": "video"}]}],
            },
            "messages.0.content.0.type: Input tag 'video' found using 'type' does not match",
        ),
        (
            {
                "model": MODEL,
                "max_tokens": 10,
                "messages": [
                    {
                        "role": "user",
                        "content": [
                            {
                                "type": "image",
                                "source": {
                                    "type": "base64",
                                    "media_type": "image/bmp",
                                    "data": "AA==",
                                },
                            }
                        ],
                    }
                ],
            },
            "messages.0.content.0.source.media_type: Input should be",
        ),
        (body(temperature=1.5), "temperature: Input should be less than or equal to 1"),
        (body(temperature=-0.1), "temperature: Input should be greater than or equal to 0"),
        (body(top_p=2), "top_p: Input should be less than or equal to 1"),
        (body(top_k=-1), "top_k: Input should be greater than or equal to 0"),
        (
            body(stop_sequences=[" "]),
            "stop_sequences: each stop sequence must contain non-whitespace",
        ),
        (body(max_tokens=100_000), "max_tokens: 100000 > 64000, which is the maximum allowed"),
        (body(frobnicate=True), "frobnicate: Extra inputs are not permitted"),
        (
            body(tools=[{"name": "x", "parameters": {"type": "object"}}]),
            "tools.0.custom.parameters: Extra inputs are not permitted",
        ),
        (
            body(tools=[{"name": "bad name", "input_schema": {"type": "object"}}]),
            "tools.0.custom.name: String should match pattern",
        ),
        (
            body(
                tools=[{"name": "t", "input_schema": {"type": "object"}}],
                tool_choice={"type": "tool", "name": "other"},
            ),
            "tool_choice.name: Tool 'other' not found in provided tools",
        ),
        (["not", "an", "object"], "Request body must be a JSON object"),
    ],
)
def test_invalid_request_is_a_400_with_the_field_named(
    simulator: SimulatorServer, payload: Any, message: str
) -> None:
    status, kind, text = error_of(call(simulator, payload))
    assert (status, kind) == (400, "invalid_request_error")
    assert text.startswith(message)


def test_unparseable_json_is_a_400(simulator: SimulatorServer) -> None:
    response = httpx.post(
        f"{simulator.url}/v1/messages",
        content=b"{not json",
        headers={"x-api-key": simulator.api_key, "anthropic-version": "2023-06-01"},
    )
    status, kind, text = error_of(response)
    assert (status, kind) == (400, "invalid_request_error")
    assert "error parsing the body" in text


def test_unknown_model_is_a_404(simulator: SimulatorServer) -> None:
    assert error_of(call(simulator, body(model="claude-nonexistent"))) == (
        404,
        "not_found_error",
        "model: claude-nonexistent",
    )


def test_prompt_over_the_window_is_refused_with_the_real_wording(
    simulator: SimulatorServer,
) -> None:
    # 'word' is one token by the simulator's rule, the space free: 200,001 words + overheads.
    status, kind, text = error_of(call(simulator, body("word " * 200_001)))
    assert (status, kind) == (400, "invalid_request_error")
    assert text.startswith("prompt is too long: ")
    count = int(text.split()[4])
    assert count > 200_000
    assert text == f"prompt is too long: {count} tokens > 200000 maximum"


def test_body_over_32_mb_is_a_413(simulator: SimulatorServer) -> None:
    payload = body("x" * (32 * 1024 * 1024 + 10))
    assert error_of(call(simulator, payload, timeout=60))[:2] == (413, "request_too_large")


@pytest.mark.parametrize(
    ("headers", "message"),
    [
        ({"x-api-key": ""}, "x-api-key header is required"),
        ({"x-api-key": "sk-wrong"}, "invalid x-api-key"),
    ],
)
def test_missing_or_wrong_key_is_a_401(
    simulator: SimulatorServer, headers: dict[str, str], message: str
) -> None:
    response = call(simulator, body(), key=headers["x-api-key"])
    assert error_of(response) == (401, "authentication_error", message)


def test_bearer_token_is_accepted(simulator: SimulatorServer) -> None:
    response = httpx.post(
        f"{simulator.url}/v1/messages",
        json=body(),
        headers={"authorization": f"Bearer {simulator.api_key}", "anthropic-version": "2023-06-01"},
    )
    assert response.status_code == 200


def test_missing_version_header_is_a_400(simulator: SimulatorServer) -> None:
    response = httpx.post(
        f"{simulator.url}/v1/messages", json=body(), headers={"x-api-key": simulator.api_key}
    )
    assert error_of(response) == (
        400,
        "invalid_request_error",
        "anthropic-version: header is required",
    )


def test_unknown_path_gets_the_error_envelope(simulator: SimulatorServer) -> None:
    response = call(simulator, body(), path="/v1/nothing-here")
    assert error_of(response)[:2] == (404, "not_found_error")


def test_documents_and_images_are_accepted(simulator: SimulatorServer) -> None:
    content = [
        {
            "type": "document",
            "source": {"type": "base64", "media_type": "application/pdf", "data": "JVBERi0="},
        },
        {
            "type": "image",
            "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="},
        },
        {
            "type": "document",
            "source": {"type": "text", "media_type": "text/plain", "data": "notes"},
        },
        {"type": "text", "text": "What do these show?"},
    ]
    response = call(
        simulator,
        {"model": MODEL, "max_tokens": 50, "messages": [{"role": "user", "content": content}]},
    )
    assert response.status_code == 200
    assert response.json()["usage"]["input_tokens"] >= 1_500 + 85
