"""The client's boundary: statuses become the error tree, the key stays secret, URLs are safe."""

from __future__ import annotations

import json
import pickle
from typing import Any

import httpx2 as httpx  # the client's HTTP stack: its transports and responses
import pytest

from pipeline.config.endpoint import ApiKey, Endpoint, normalise_base_url, resolve_endpoint
from pipeline.core import errors
from pipeline.engine.client import MessagesClient
from pipeline.simulator import SimulatorServer

KEY = "sk-test-SECRET-5f3a9c"
PARAMS = {
    "model": "claude-haiku-4-5",
    "max_tokens": 50,
    "messages": [{"role": "user", "content": "hi"}],
}


def envelope(kind: str, message: str = "nope", **extra: Any) -> dict[str, Any]:
    return {
        "type": "error",
        "error": {"type": kind, "message": message, **extra},
        "request_id": "req_1",
    }


def responder(status: int, body: Any, headers: dict[str, str] | None = None) -> httpx.MockTransport:
    def handle(request: httpx.Request) -> httpx.Response:
        assert request.headers["x-api-key"] == KEY
        assert request.headers["anthropic-version"] == "2023-06-01"
        assert request.headers["user-agent"].startswith("pipeline/")
        assert request.headers["content-type"] == "application/json"
        content = body if isinstance(body, bytes) else json.dumps(body).encode()
        return httpx.Response(
            status, content=content, headers={"request-id": "req_1", **(headers or {})}
        )

    return httpx.MockTransport(handle)


async def create_with(transport: httpx.AsyncBaseTransport) -> Any:
    endpoint = Endpoint("https://api.example.test", ApiKey(KEY), key_source="$TEST_KEY")
    async with MessagesClient(endpoint, transport=transport) as client:
        return await client.create(PARAMS)


@pytest.mark.parametrize(
    ("status", "body", "headers", "expected"),
    [
        (400, envelope("invalid_request_error"), {}, errors.InvalidRequest),
        (401, envelope("authentication_error"), {}, errors.AuthenticationFailed),
        (402, envelope("billing_error"), {}, errors.BillingProblem),
        (403, envelope("permission_error"), {}, errors.PermissionDenied),
        (404, envelope("not_found_error", "model: claude-x"), {}, errors.ModelNotFound),
        (408, envelope("timeout_error"), {}, errors.RequestTimeout),
        (409, envelope("conflict_error"), {}, errors.Conflict),
        (413, envelope("request_too_large"), {}, errors.RequestTooLarge),
        (429, envelope("rate_limit_error"), {"retry-after": "3"}, errors.RateLimited),
        (
            429,
            envelope("rate_limit_error", error_code="enforced_spend_limit_reached"),
            {},
            errors.SpendCapReached,
        ),
        (500, envelope("api_error"), {}, errors.ServerError),
        (502, b"<html>Bad gateway</html>", {}, errors.ServerError),
        (504, envelope("timeout_error"), {}, errors.ServerError),
        (529, envelope("overloaded_error"), {}, errors.Overloaded),
        (200, b'{"type": "message", "content": [', {}, errors.BrokenReply),
        (200, b"<html>gateway page</html>", {}, errors.BrokenReply),
        (200, {"type": "error", "error": {}}, {}, errors.BrokenReply),
    ],
)
@pytest.mark.anyio
async def test_status_and_type_decide_the_error_class(
    status: int, body: Any, headers: dict[str, str], expected: type[errors.PipelineError]
) -> None:
    with pytest.raises(expected) as caught:
        await create_with(responder(status, body, headers))
    assert type(caught.value) is expected
    assert caught.value.request_id == "req_1"
    assert KEY not in str(caught.value)
    assert KEY not in repr(caught.value)


@pytest.mark.anyio
async def test_retry_after_ms_wins_and_should_retry_is_read() -> None:
    transport = responder(
        429,
        envelope("rate_limit_error"),
        {"retry-after": "9", "retry-after-ms": "1500", "x-should-retry": "false"},
    )
    with pytest.raises(errors.RateLimited) as caught:
        await create_with(transport)
    assert caught.value.retry_after == 1.5
    assert caught.value.should_retry is False
    assert not errors.is_retryable(caught.value)


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"retry-after": "0"}, None),
        ({"retry-after": "-5"}, None),
        ({"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"}, None),  # already past
        ({"retry-after-ms": "0", "retry-after": "3"}, 3.0),
        ({"retry-after-ms": "250"}, 0.25),
    ],
)
@pytest.mark.anyio
async def test_a_retry_after_of_zero_or_past_is_no_guidance(
    headers: dict[str, str], expected: float | None
) -> None:
    """A zero would retry at once into a storm: the policy's backoff applies instead."""
    with pytest.raises(errors.RateLimited) as caught:
        await create_with(responder(429, envelope("rate_limit_error"), headers))
    assert caught.value.retry_after == expected


def test_retry_decisions_by_class_and_server_verdict() -> None:
    assert errors.is_retryable(errors.Overloaded("x"))
    assert not errors.is_retryable(errors.InvalidRequest("x"))
    assert errors.is_retryable(errors.InvalidRequest("x", should_retry=True))
    assert not errors.is_retryable(errors.AuthenticationFailed("x", should_retry=True))


@pytest.mark.parametrize(
    ("raised", "expected"),
    [
        (httpx.ConnectError("refused"), errors.ConnectionFailed),
        (httpx.ConnectTimeout("slow"), errors.ConnectionFailed),
        (httpx.ReadTimeout("slow"), errors.ReplyTimedOut),
        (httpx.RemoteProtocolError("peer closed"), errors.BrokenReply),
        (httpx.ReadError("reset"), errors.BrokenReply),
    ],
)
@pytest.mark.anyio
async def test_transport_errors_are_translated(
    raised: Exception, expected: type[Exception]
) -> None:
    def handle(request: httpx.Request) -> httpx.Response:
        assert request.headers["x-api-key"] == KEY  # the error is built from this request
        raise type(raised)(str(raised), request=request)

    with pytest.raises(expected) as caught:
        await create_with(httpx.MockTransport(handle))
    error = caught.value
    assert error.message  # says what happened ...
    for shown in (str(error), repr(error), error.message, *map(str, error.args)):
        assert KEY not in shown  # ... without the request's headers


def test_the_key_never_shows() -> None:
    key = ApiKey(KEY)
    endpoint = Endpoint("https://api.example.test", key)
    client = MessagesClient(endpoint)
    for text in (repr(key), str(key), repr(endpoint), str(endpoint), repr(client), f"{key}"):
        assert KEY not in text
    with pytest.raises(TypeError):
        pickle.dumps(key)


@pytest.mark.parametrize(
    ("env", "key_variable", "expected_key", "expected_url"),
    [
        ({"MEGALLM_API_KEY": "m", "ANTHROPIC_API_KEY": "a"}, None, "m", "https://ai.megallm.io"),
        ({"ANTHROPIC_API_KEY": "a"}, None, "a", "https://api.anthropic.com"),
        ({"JOB_KEY": "j", "MEGALLM_API_KEY": "m"}, "JOB_KEY", "j", "https://api.anthropic.com"),
        ({"JOB_KEY": " ", "ANTHROPIC_API_KEY": "a"}, "JOB_KEY", "a", "https://api.anthropic.com"),
        (
            {"ANTHROPIC_API_KEY": "a", "ANTHROPIC_BASE_URL": "https://gw.test/v1/"},
            None,
            "a",
            "https://gw.test",
        ),
    ],
)
def test_key_and_base_url_resolution(
    env: dict[str, str], key_variable: str | None, expected_key: str, expected_url: str
) -> None:
    endpoint = resolve_endpoint(key_variable=key_variable, env=env)
    assert endpoint.api_key.reveal() == expected_key
    assert endpoint.base_url == expected_url


def test_missing_key_says_where_to_put_it() -> None:
    with pytest.raises(
        errors.ConfigError,
        match=r"\$JOB_KEY or \$MEGALLM_API_KEY or \$ANTHROPIC_API_KEY.*--simulate",
    ):
        resolve_endpoint(key_variable="JOB_KEY", env={})


@pytest.mark.parametrize(
    ("url", "allowed"),
    [
        ("https://ai.megallm.io", True),
        ("http://127.0.0.1:8765", True),
        ("http://localhost:8765", True),
        ("http://[::1]:8765", True),
        ("http://ai.megallm.io", False),
        ("http://10.0.0.5:8080", False),
        ("ftp://ai.megallm.io", False),
        ("ai.megallm.io", False),
    ],
)
def test_plain_http_only_to_this_machine(url: str, allowed: bool) -> None:
    if allowed:
        assert normalise_base_url(url).startswith(url.split(":")[0])
    else:
        with pytest.raises(errors.ConfigError, match=r"endpoint\.base_url"):
            normalise_base_url(url)


def test_plain_http_elsewhere_when_explicitly_allowed() -> None:
    assert normalise_base_url("http://gw.lan:8080/", allow_insecure=True) == "http://gw.lan:8080"


@pytest.mark.anyio
async def test_plain_and_streamed_replies_agree(simulator: SimulatorServer) -> None:
    endpoint = Endpoint(simulator.url, ApiKey(simulator.api_key))
    async with MessagesClient(endpoint) as client:
        plain = await client.create(PARAMS)
        streamed = await client.create(PARAMS, stream=True)
        tools = {
            **PARAMS,
            "max_tokens": 500,
            "tools": [
                {
                    "name": "t",
                    "input_schema": {"type": "object", "properties": {"a": {"type": "integer"}}},
                }
            ],
            "tool_choice": {"type": "tool", "name": "t"},
        }
        tool_plain = await client.create(tools)
        tool_streamed = await client.create(tools, stream=True)
        counted = await client.count_tokens(PARAMS)
    assert streamed.text == plain.text != ""
    assert streamed.usage == plain.usage
    assert streamed.stop_reason == plain.stop_reason
    assert streamed.request_id
    assert streamed.request_id != plain.request_id
    assert tool_streamed.tool_input == tool_plain.tool_input is not None
    assert counted == plain.usage.input_tokens


@pytest.mark.anyio
async def test_a_body_that_cannot_be_encoded_is_that_requests_error(
    simulator: SimulatorServer,
) -> None:
    # A lone surrogate (an undecodable byte carried in a str) has no UTF-8 form: one bad
    # document must become one error row, not a traceback that ends the run.
    params = {**PARAMS, "messages": [{"role": "user", "content": "caf\udce9"}]}
    endpoint = Endpoint(simulator.url, ApiKey(simulator.api_key))
    async with MessagesClient(endpoint, concurrency=1) as client:
        for stream in (False, True):
            with pytest.raises(errors.InvalidRequest, match="could not be encoded as JSON"):
                await client.create(params, stream=stream)
        with pytest.raises(errors.InvalidRequest):
            await client.count_tokens(params)
        assert (await client.create(PARAMS)).text  # the client is still fine


@pytest.mark.anyio
async def test_requests_go_under_the_base_urls_path(simulator: SimulatorServer) -> None:
    # A gateway mounted under a path: every request keeps it (the messages URL is merged
    # with the base once, when the client is made), and each says its body is JSON.
    seen: list[tuple[str, str, str]] = []

    async def forward(request: httpx.Request) -> httpx.Response:
        seen.append((request.method, request.url.path, request.headers["content-type"]))
        path = request.url.path.removeprefix("/gateway/anthropic")
        async with httpx.AsyncClient(base_url=simulator.url) as real:
            sent = await real.request(
                request.method, path, content=request.content, headers=request.headers
            )
            return httpx.Response(sent.status_code, content=sent.content, headers=sent.headers)

    base = "https://gw.example.test/gateway/anthropic"
    endpoint = Endpoint(base, ApiKey(simulator.api_key))
    async with MessagesClient(endpoint, transport=httpx.MockTransport(forward)) as client:
        assert (await client.create(PARAMS)).text
        assert (await client.create(PARAMS, stream=True)).text
        assert await client.count_tokens(PARAMS) > 0
    messages = "/gateway/anthropic/v1/messages"
    json_type = "application/json"
    assert seen == [
        ("POST", messages, json_type),
        ("POST", messages, json_type),
        ("POST", messages + "/count_tokens", json_type),
    ]
