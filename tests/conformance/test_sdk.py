"""The official ``anthropic`` SDK, pointed at the simulator, works as it does against the API.

Every client is made with ``max_retries=0`` so that an error reaches the test at once, and
with an explicit ``timeout`` so that nothing can hang (an explicit timeout also stops the SDK
from deriving a non-streaming timeout from ``max_tokens``, which matters for the request
that omits ``max_tokens`` on purpose).

Notes on the installed SDK (2.x) that shape these tests:

- it sends ``api_key`` as ``Authorization: Bearer <key>``, not ``x-api-key``;
- ``messages.create`` sends exactly the parameters it is given (nothing is added), and
  ``messages.stream`` adds only ``"stream": true``;
- ``temperature`` is no longer a keyword of ``messages.create``; it goes in ``extra_body``;
- some releases warn (``DeprecationWarning``) for ``claude-sonnet-4-5`` and ``claude-opus-4-5``
  and some do not (2.16.0, the version requirements-lock.txt pins, does not); the tests that use
  those ids ignore the warning rather than assert on it, and most tests use ``claude-haiku-4-5``;
- an ``event: error`` inside a 200 stream is raised as the base ``APIStatusError`` (status
  200), and a connection cut mid-stream escapes as the transport's own
  ``httpx2.RemoteProtocolError``, not as an ``APIConnectionError``.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterable, AsyncIterator, Iterable, Iterator
from datetime import datetime
from itertools import groupby
from typing import Any

import anthropic
import httpx2
import jsonschema
import pytest

from pipeline.simulator import (
    CONTEXT_WINDOW,
    Faults,
    Limits,
    SimulatorConfig,
    SimulatorServer,
    count_request,
    count_text,
    request_digest,
)
from pipeline.simulator.config import MODEL_ALIASES, MODELS, served_models
from tests.conftest import TEST_MODELS, FakeClock, StartSimulator

pytestmark = pytest.mark.conformance

MODEL = "claude-haiku-4-5"
MODEL_ID = "claude-haiku-4-5-20251001"
PROMPT = "Summarize: the quarterly report lists three risks and two open questions."
TIMEOUT = 10.0
DEPRECATED = "ignore:The model '.*' is deprecated:DeprecationWarning"

# The event names of a streamed reply with one content block, repeats collapsed.
STREAM_SHAPE = [
    "message_start",
    "content_block_start",
    "content_block_delta",
    "content_block_stop",
    "message_delta",
    "message_stop",
]

SUMMARY_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "title": {"type": "string", "minLength": 3, "maxLength": 40},
        "year": {"type": "integer", "minimum": 1990, "maximum": 2030},
        "confidence": {"type": "number", "minimum": 0, "maximum": 1},
        "status": {"type": "string", "enum": ["draft", "final", "retracted"]},
        "published": {"type": "boolean"},
        "tags": {"type": "array", "items": {"type": "string"}, "minItems": 1, "maxItems": 3},
        "author": {
            "type": "object",
            "properties": {"name": {"type": "string"}, "orcid": {"type": ["string", "null"]}},
            "required": ["name"],
            "additionalProperties": False,
        },
    },
    "required": ["title", "year", "status", "tags", "author"],
    "additionalProperties": False,
}
TOOLS: list[dict[str, Any]] = [
    {
        "name": "get_weather",
        "description": "Current weather for a city.",
        "input_schema": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
    {
        "name": "record_summary",
        "description": "Record the structured summary of a document.",
        "input_schema": SUMMARY_SCHEMA,
    },
]
FORCED = {"type": "tool", "name": "record_summary"}


def params(text: str = PROMPT, **extra: Any) -> dict[str, Any]:
    return {
        "model": MODEL,
        "max_tokens": 300,
        "messages": [{"role": "user", "content": text}],
        **extra,
    }


def make_client(server: SimulatorServer, **kwargs: Any) -> anthropic.Anthropic:
    kwargs.setdefault("api_key", server.api_key)
    return anthropic.Anthropic(base_url=server.url, max_retries=0, timeout=TIMEOUT, **kwargs)


def make_async_client(server: SimulatorServer) -> anthropic.AsyncAnthropic:
    return anthropic.AsyncAnthropic(
        base_url=server.url, api_key=server.api_key, max_retries=0, timeout=TIMEOUT
    )


@pytest.fixture
def client(simulator: SimulatorServer) -> Iterator[anthropic.Anthropic]:
    with make_client(simulator) as sdk:
        yield sdk


@pytest.fixture
async def async_client(simulator: SimulatorServer) -> AsyncIterator[anthropic.AsyncAnthropic]:
    async with make_async_client(simulator) as sdk:
        yield sdk


def text_of(message: anthropic.types.Message) -> str:
    assert [block.type for block in message.content] == ["text"]
    block = message.content[0]
    assert isinstance(block, anthropic.types.TextBlock)
    return block.text


def reply_prefix(body: dict[str, Any]) -> str:
    return f"Reply {request_digest(body)[:12]} to:"


def assert_request_id(exc: anthropic.APIStatusError) -> None:
    """The SDK exposes the request id, and it is the one the server sent."""
    assert exc.request_id is not None
    assert exc.request_id.startswith("req_")
    assert exc.request_id == exc.response.headers["request-id"]


def assert_http_error(
    exc: anthropic.APIStatusError, status: int, error_type: str, message: str | None = None
) -> None:
    assert exc.status_code == status
    assert exc.response.status_code == status
    assert exc.type == error_type
    assert isinstance(exc.body, dict)
    assert exc.body["type"] == "error"
    assert exc.body["error"]["type"] == error_type
    if message is not None:
        assert exc.body["error"]["message"] == message
        assert exc.api_message == message
    assert_request_id(exc)
    assert exc.body["request_id"] == exc.request_id


# 1. A plain reply, parsed by the sync client.


def test_create_parses_reply(client: anthropic.Anthropic) -> None:
    sent_params = params()
    raw = client.messages.with_raw_response.create(**sent_params)
    sent = json.loads(raw.http_request.content)
    assert sent == sent_params  # the SDK adds no fields to the body
    message = raw.parse()

    assert isinstance(message, anthropic.types.Message)
    assert message.type == "message"
    assert message.role == "assistant"
    assert message.id.startswith("msg_")
    assert message.model == MODEL_ID
    assert message.stop_reason == "end_turn"
    assert message.stop_sequence is None
    text = text_of(message)
    assert text.startswith(reply_prefix(sent))
    assert message.usage.input_tokens == count_request(sent) > 0
    assert 40 <= message.usage.output_tokens <= 120  # SimulatorConfig().reply_tokens
    assert message.usage.cache_creation_input_tokens == 0
    assert message.usage.cache_read_input_tokens == 0
    assert message._request_id == raw.headers["request-id"]
    assert message._request_id is not None
    assert message._request_id.startswith("req_")


@pytest.mark.filterwarnings(DEPRECATED)
@pytest.mark.parametrize(("alias", "model_id"), sorted(MODEL_ALIASES.items()))
def test_alias_resolves_to_model_id(client: anthropic.Anthropic, alias: str, model_id: str) -> None:
    message = client.messages.create(**params(model=alias, max_tokens=20))
    assert message.model == model_id


@pytest.mark.filterwarnings(DEPRECATED)
def test_sdk_alias_claude_sonnet_4_5_resolves_to_its_snapshot(client: anthropic.Anthropic) -> None:
    """The brief's example alias is served under its dated snapshot id.

    Relies on the SDK sending an alias unchanged. Whether the SDK also warns that the model is
    deprecated (some releases do, 2.16 does not) is the SDK's business, not ours: ignored.
    """
    message = client.messages.create(**params(model="claude-sonnet-4-5"))
    assert message.model == "claude-sonnet-4-5-20250929"
    assert text_of(message).startswith(reply_prefix(params(model="claude-sonnet-4-5")))


def test_max_tokens_cuts_the_reply(client: anthropic.Anthropic) -> None:
    message = client.messages.create(**params(max_tokens=5))
    assert message.stop_reason == "max_tokens"
    assert message.usage.output_tokens == 5
    text = text_of(message)
    assert text.startswith("Reply")
    assert count_text(text) <= 5


def test_stop_sequence_ends_the_reply(client: anthropic.Anthropic) -> None:
    message = client.messages.create(**params(stop_sequences=["risks"]))
    assert message.stop_reason == "stop_sequence"
    assert message.stop_sequence == "risks"
    text = text_of(message)
    assert "risks" not in text
    assert text.startswith(reply_prefix(params(stop_sequences=["risks"])))


# 2. The async client.


@pytest.mark.anyio
async def test_async_create(async_client: anthropic.AsyncAnthropic) -> None:
    message = await async_client.messages.create(**params())
    assert message.model == MODEL_ID
    assert message.stop_reason == "end_turn"
    assert text_of(message).startswith(reply_prefix(params()))
    assert message.usage.input_tokens == count_request(params())
    assert message.usage.output_tokens > 0


@pytest.mark.anyio
async def test_async_stream(async_client: anthropic.AsyncAnthropic) -> None:
    async with async_client.messages.stream(**params()) as stream:
        chunks = [chunk async for chunk in stream.text_stream]
        final = await stream.get_final_message()
    assert len(chunks) > 1
    assert "".join(chunks) == text_of(final)
    assert text_of(final).startswith(reply_prefix(params()))
    assert final.stop_reason == "end_turn"
    assert final.usage.input_tokens == count_request(params())


# 3. Streaming.


def test_stream_helper_matches_plain_reply(client: anthropic.Anthropic) -> None:
    plain = client.messages.create(**params())
    with client.messages.stream(**params()) as stream:
        chunks = list(stream.text_stream)
        final = stream.get_final_message()
        sent = json.loads(stream.response.request.content)
        request_id = stream.request_id
    assert sent == {**params(), "stream": True}  # the helper adds only "stream"
    assert len(chunks) > 1
    assert "".join(chunks) == text_of(final) == text_of(plain)
    assert final.model == MODEL_ID
    assert final.stop_reason == "end_turn"
    assert final.stop_sequence is None
    assert final.usage.input_tokens == plain.usage.input_tokens == count_request(sent)
    assert final.usage.output_tokens == plain.usage.output_tokens
    assert request_id is not None
    assert request_id.startswith("req_")


def test_stream_helper_reports_max_tokens(client: anthropic.Anthropic) -> None:
    with client.messages.stream(**params(max_tokens=7)) as stream:
        final = stream.get_final_message()
    assert final.stop_reason == "max_tokens"
    assert final.usage.output_tokens == 7


def test_raw_stream_event_sequence(client: anthropic.Anthropic) -> None:
    plain = client.messages.create(**params())
    stream = client.messages.create(**params(), stream=True)
    with stream:
        events = list(stream)
    names = [event.type for event in events]
    assert [name for name, _ in groupby(names)] == STREAM_SHAPE
    assert names.count("content_block_delta") > 1

    start, block_start, *deltas, block_stop, message_delta, stop = events
    assert isinstance(start, anthropic.types.RawMessageStartEvent)
    assert start.message.model == MODEL_ID
    assert start.message.content == []
    assert start.message.stop_reason is None
    assert start.message.usage.input_tokens == plain.usage.input_tokens
    assert isinstance(block_start, anthropic.types.RawContentBlockStartEvent)
    assert block_start.index == 0
    assert block_start.content_block.type == "text"
    text = ""
    for delta in deltas:
        assert isinstance(delta, anthropic.types.RawContentBlockDeltaEvent)
        assert delta.index == 0
        assert isinstance(delta.delta, anthropic.types.TextDelta)
        text += delta.delta.text
    assert text == text_of(plain)
    assert isinstance(block_stop, anthropic.types.RawContentBlockStopEvent)
    assert block_stop.index == 0
    assert isinstance(message_delta, anthropic.types.RawMessageDeltaEvent)
    assert message_delta.delta.stop_reason == "end_turn"
    assert message_delta.usage.output_tokens == plain.usage.output_tokens
    assert isinstance(stop, anthropic.types.RawMessageStopEvent)


# 4. Forced tool use.


def test_forced_tool_use(client: anthropic.Anthropic) -> None:
    message = client.messages.create(**params(tools=TOOLS, tool_choice=FORCED))
    assert message.stop_reason == "tool_use"
    assert [block.type for block in message.content] == ["tool_use"]
    block = message.content[0]
    assert isinstance(block, anthropic.types.ToolUseBlock)
    assert block.name == "record_summary"
    assert block.id.startswith("toolu_")
    assert isinstance(block.input, dict)
    jsonschema.validate(block.input, SUMMARY_SCHEMA)
    assert message.usage.input_tokens == count_request(params(tools=TOOLS, tool_choice=FORCED))


def test_streamed_tool_use_gives_same_input(client: anthropic.Anthropic) -> None:
    plain = client.messages.create(**params(tools=TOOLS, tool_choice=FORCED))
    partial_json = ""
    with client.messages.stream(**params(tools=TOOLS, tool_choice=FORCED)) as stream:
        for event in stream:
            if event.type == "input_json":
                partial_json += event.partial_json
        final = stream.get_final_message()
    assert final.stop_reason == "tool_use"
    assert [block.type for block in final.content] == ["tool_use"]
    streamed, expected = final.content[0], plain.content[0]
    assert isinstance(streamed, anthropic.types.ToolUseBlock)
    assert isinstance(expected, anthropic.types.ToolUseBlock)
    assert (streamed.id, streamed.name) == (expected.id, expected.name)
    assert streamed.input == expected.input
    assert json.loads(partial_json) == expected.input
    jsonschema.validate(streamed.input, SUMMARY_SCHEMA)
    assert final.usage.output_tokens == plain.usage.output_tokens


# 5. count_tokens charges what create then charges.

COUNT_CASES = [
    pytest.param({"messages": [{"role": "user", "content": PROMPT}]}, id="plain"),
    pytest.param(
        {
            "system": "You summarize documents in one paragraph.",
            "messages": [
                {"role": "user", "content": "First document: 42 pages of notes."},
                {"role": "assistant", "content": "Noted. Send the next one."},
                {"role": "user", "content": "Second document: 文書の要約 (CJK), 3.14159."},
            ],
        },
        id="system-and-turns",
    ),
    pytest.param(
        {
            "system": [{"type": "text", "text": "Answer tersely.\n\nUse English."}],
            "messages": [
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": "Part one: the cat sat on the mat."},
                        {"type": "text", "text": "Part two: the dog ran."},
                    ],
                }
            ],
        },
        id="block-lists",
    ),
    pytest.param(
        {
            "tools": TOOLS,
            "tool_choice": {"type": "auto"},
            "messages": [
                {"role": "user", "content": "Weather in Paris?"},
                {
                    "role": "assistant",
                    "content": [
                        {
                            "type": "tool_use",
                            "id": "toolu_01",
                            "name": "get_weather",
                            "input": {"city": "Paris"},
                        }
                    ],
                },
                {
                    "role": "user",
                    "content": [
                        {"type": "tool_result", "tool_use_id": "toolu_01", "content": "18 C, sun"}
                    ],
                },
            ],
        },
        id="tools-and-results",
    ),
]


@pytest.mark.parametrize("request_params", COUNT_CASES)
def test_count_tokens_matches_usage(
    client: anthropic.Anthropic, request_params: dict[str, Any]
) -> None:
    counted = client.messages.count_tokens(model=MODEL, **request_params)
    assert isinstance(counted, anthropic.types.MessageTokensCount)
    message = client.messages.create(model=MODEL, max_tokens=50, **request_params)
    assert counted.input_tokens == message.usage.input_tokens
    assert counted.input_tokens == count_request({"model": MODEL, **request_params})


# 6. Models and Bearer auth.


def test_models_list(client: anthropic.Anthropic) -> None:
    models = list(client.models.list())
    served = [(m.id, m.display_name, m.created_at) for m in served_models(TEST_MODELS).models]
    assert set(MODELS) <= set(served)  # Anthropic's list, and the gateway's beside it
    assert len(models) == len(served)
    assert all(m.type == "model" for m in models)
    assert {m.id: m.display_name for m in models} == {mid: name for mid, name, _ in served}
    created = {mid: datetime.fromisoformat(stamp) for mid, _, stamp in served}
    assert {m.id: m.created_at for m in models} == created
    assert all(m.created_at.tzinfo is not None for m in models)


def test_models_list_paginates(client: anthropic.Anthropic) -> None:
    every = [m.id for m in client.models.list()]
    page = client.models.list(limit=2)
    assert [m.id for m in page.data] == every[:2]
    assert page.has_more
    assert (page.first_id, page.last_id) == (every[0], every[1])
    assert [m.id for m in page] == every  # auto-pagination follows after_id to the end
    after = client.models.list(after_id=every[1], limit=2)
    assert [m.id for m in after.data] == every[2:4]
    last = client.models.list(after_id=every[-3], limit=2)
    assert [m.id for m in last.data] == every[-2:]
    assert not last.has_more


def test_models_retrieve(client: anthropic.Anthropic) -> None:
    model = client.models.retrieve(MODEL_ID)
    assert (model.id, model.display_name) == (MODEL_ID, "Claude Haiku 4.5")
    with pytest.raises(anthropic.NotFoundError) as caught:
        client.models.retrieve("claude-nonexistent-1")
    assert_http_error(caught.value, 404, "not_found_error")


def _credentials(how: str, key: str) -> dict[str, Any]:
    if how == "auth_token":
        return {"auth_token": key, "api_key": None}
    if how == "api_key":
        return {"api_key": key}
    # A key in an explicit x-api-key header, the SDK's own Authorization header removed.
    return {
        "api_key": "unused",
        "default_headers": {"X-Api-Key": key, "Authorization": anthropic.omit},
    }


@pytest.mark.parametrize(
    ("how", "header", "scheme"),
    [
        ("auth_token", "authorization", "Bearer "),
        ("api_key", "authorization", "Bearer "),  # SDK 2.x sends api_key as a Bearer token too
        ("x-api-key", "x-api-key", ""),
    ],
)
def test_accepted_credentials(
    simulator: SimulatorServer, how: str, header: str, scheme: str
) -> None:
    key = simulator.api_key
    with make_client(simulator, **_credentials(how, key)) as sdk:
        raw = sdk.messages.with_raw_response.create(**params(max_tokens=20))
        sent = raw.http_request.headers
        assert sent[header] == f"{scheme}{key}"
        assert ("x-api-key" if header == "authorization" else "authorization") not in sent
        assert raw.parse().model == MODEL_ID
        assert {m.id for m in sdk.models.list()} == {
            m.id for m in served_models(TEST_MODELS).models
        }


# 7. Errors raise the SDK's own classes.


@pytest.mark.parametrize(
    ("credentials", "extra_headers", "message"),
    [
        pytest.param({"api_key": "sk-wrong"}, None, "invalid x-api-key", id="wrong-api-key"),
        pytest.param(
            {"auth_token": "wrong", "api_key": None}, None, "invalid x-api-key", id="wrong-token"
        ),
        # Without any credential the SDK refuses to send (a client-side TypeError), so the
        # key's header is removed from one request to reach the server without a key.
        pytest.param(
            {}, {"Authorization": anthropic.omit}, "x-api-key header is required", id="no-key"
        ),
    ],
)
def test_authentication_error(
    simulator: SimulatorServer,
    credentials: dict[str, Any],
    extra_headers: dict[str, Any] | None,
    message: str,
) -> None:
    with (
        make_client(simulator, **credentials) as sdk,
        pytest.raises(anthropic.AuthenticationError) as caught,
    ):
        sdk.messages.create(**params(), extra_headers=extra_headers)
    exc = caught.value
    assert_http_error(exc, 401, "authentication_error", message)
    if extra_headers is not None:
        assert "authorization" not in exc.request.headers
        assert "x-api-key" not in exc.request.headers


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        pytest.param({"max_tokens": anthropic.omit}, "max_tokens: Field required", id="no-max"),
        pytest.param(
            {"messages": []}, "messages: at least one message is required", id="empty-messages"
        ),
        pytest.param(
            {"messages": [{"role": "system", "content": "hi"}]},
            "messages.0.role: Input should be 'user' or 'assistant'",
            id="bad-role",
        ),
        pytest.param(
            {"extra_body": {"temperature": 1.5}},
            "temperature: Input should be less than or equal to 1",
            id="temperature",
        ),
    ],
)
def test_bad_request(client: anthropic.Anthropic, changes: dict[str, Any], message: str) -> None:
    with pytest.raises(anthropic.BadRequestError) as caught:
        client.messages.create(**{**params(), **changes})
    assert_http_error(caught.value, 400, "invalid_request_error", message)


def test_prompt_too_long(client: anthropic.Anthropic) -> None:
    long_params = params("word " * (CONTEXT_WINDOW + 10))
    tokens = count_request(long_params)
    assert tokens > CONTEXT_WINDOW
    with pytest.raises(anthropic.BadRequestError) as caught:
        client.messages.create(**long_params)
    exc = caught.value
    assert_http_error(exc, 400, "invalid_request_error")
    assert exc.api_message is not None
    found = re.fullmatch(r"prompt is too long: (\d+) tokens > (\d+) maximum", exc.api_message)
    assert found is not None, exc.api_message
    assert (int(found[1]), int(found[2])) == (tokens, CONTEXT_WINDOW)


def test_unknown_model(client: anthropic.Anthropic) -> None:
    with pytest.raises(anthropic.NotFoundError) as caught:
        client.messages.create(**params(model="claude-nonexistent-1"))
    assert_http_error(caught.value, 404, "not_found_error", "model: claude-nonexistent-1")


def test_rate_limited(start_simulator: StartSimulator, fake_clock: FakeClock) -> None:
    server = start_simulator(
        SimulatorConfig(models=TEST_MODELS, limits=Limits(requests_per_minute=1)), clock=fake_clock
    )
    with make_client(server) as sdk:
        first = sdk.messages.with_raw_response.create(**params())
        assert first.headers["anthropic-ratelimit-requests-limit"] == "1"
        assert first.headers["anthropic-ratelimit-requests-remaining"] == "0"
        with pytest.raises(anthropic.RateLimitError) as caught:
            sdk.messages.create(**params())
    exc = caught.value
    assert_http_error(exc, 429, "rate_limit_error")
    assert "1 requests per minute" in (exc.api_message or "")
    # At 1 request/minute the bucket refills one request in 60 s; the clock does not move.
    assert exc.response.headers["retry-after"] == "60"
    assert exc.response.headers["x-should-retry"] == "true"
    assert exc.response.headers["anthropic-ratelimit-requests-remaining"] == "0"
    assert server.stats()["rate_limited"] == {"requests": 1}


def test_count_tokens_rate_limited(start_simulator: StartSimulator, fake_clock: FakeClock) -> None:
    config = SimulatorConfig(models=TEST_MODELS, count_tokens_requests_per_minute=1)
    server = start_simulator(config, clock=fake_clock)
    with make_client(server) as sdk:
        sdk.messages.count_tokens(model=MODEL, messages=params()["messages"])
        with pytest.raises(anthropic.RateLimitError) as caught:
            sdk.messages.count_tokens(model=MODEL, messages=params()["messages"])
        # Messages have their own (here unlimited) budget.
        assert sdk.messages.create(**params()).stop_reason == "end_turn"
    assert_http_error(caught.value, 429, "rate_limit_error")
    assert caught.value.response.headers["retry-after"].isdigit()


OverloadedError: type[anthropic.APIStatusError] = getattr(
    anthropic, "OverloadedError", anthropic.InternalServerError
)


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
@pytest.mark.parametrize(
    ("faults", "error_class", "status", "error_type"),
    [
        pytest.param(
            Faults(api_error=1.0), anthropic.InternalServerError, 500, "api_error", id="500"
        ),
        pytest.param(Faults(overloaded=1.0), OverloadedError, 529, "overloaded_error", id="529"),
    ],
)
def test_server_errors(
    start_simulator: StartSimulator,
    faults: Faults,
    error_class: type[anthropic.APIStatusError],
    status: int,
    error_type: str,
    stream: bool,
) -> None:
    server = start_simulator(SimulatorConfig(models=TEST_MODELS, faults=faults))
    with make_client(server) as sdk, pytest.raises(anthropic.APIStatusError) as caught:
        sdk.messages.create(**params(), stream=stream)
    exc = caught.value
    assert type(exc) is error_class
    assert isinstance(exc, anthropic.InternalServerError)
    assert_http_error(exc, status, error_type)
    if status == 529:
        assert exc.response.headers["retry-after"] == "1"


def drain(stream: Iterable[Any], seen: list[str]) -> None:
    """Read a stream to its end, noting each event's type as it comes."""
    for event in stream:
        seen.append(event.type)


async def adrain(stream: AsyncIterable[Any], seen: list[str]) -> None:
    async for event in stream:
        seen.append(event.type)


def _collect_until_error(stream: Iterable[Any]) -> tuple[list[str], anthropic.APIStatusError]:
    seen: list[str] = []
    with pytest.raises(anthropic.APIStatusError) as caught:
        drain(stream, seen)
    return seen, caught.value


def assert_mid_stream_error(seen: list[str], exc: anthropic.APIStatusError) -> None:
    assert seen[0] == "message_start"
    assert "content_block_delta" in seen  # some text came before the error
    assert "message_stop" not in seen
    # The SDK raises the base class: the HTTP status was 200, so no subclass applies.
    assert type(exc) is anthropic.APIStatusError
    assert not isinstance(exc, anthropic.InternalServerError)
    assert exc.status_code == 200
    assert exc.type == "overloaded_error"
    assert exc.api_message == "Overloaded"
    assert exc.body == {
        "type": "error",
        "error": {"type": "overloaded_error", "message": "Overloaded"},
    }
    assert_request_id(exc)


def test_mid_stream_error_raw(start_simulator: StartSimulator) -> None:
    server = start_simulator(SimulatorConfig(models=TEST_MODELS, faults=Faults(stream_error=1.0)))
    with make_client(server) as sdk:
        # A plain (non-streamed) request cannot draw a stream error.
        assert sdk.messages.create(**params()).stop_reason == "end_turn"
        with sdk.messages.create(**params(), stream=True) as stream:
            seen, exc = _collect_until_error(stream)
    assert_mid_stream_error(seen, exc)


def test_mid_stream_error_helper(start_simulator: StartSimulator) -> None:
    server = start_simulator(SimulatorConfig(models=TEST_MODELS, faults=Faults(stream_error=1.0)))
    with make_client(server) as sdk, sdk.messages.stream(**params()) as stream:
        seen, exc = _collect_until_error(stream)
    # The helper adds its own derived events ("text") between the raw ones.
    assert_mid_stream_error([name for name in seen if name != "text"], exc)


@pytest.mark.anyio
async def test_async_mid_stream_error(start_simulator: StartSimulator) -> None:
    server = start_simulator(SimulatorConfig(models=TEST_MODELS, faults=Faults(stream_error=1.0)))
    seen: list[str] = []
    async with make_async_client(server) as sdk:
        stream = await sdk.messages.create(**params(), stream=True)
        async with stream:
            with pytest.raises(anthropic.APIStatusError) as caught:
                await adrain(stream, seen)
    assert_mid_stream_error(seen, caught.value)


def test_dropped_connection(start_simulator: StartSimulator) -> None:
    server = start_simulator(SimulatorConfig(models=TEST_MODELS, faults=Faults(drop=1.0)))
    with make_client(server) as sdk, pytest.raises(anthropic.APIConnectionError) as caught:
        sdk.messages.create(**params())
    exc = caught.value
    assert type(exc) is anthropic.APIConnectionError  # not APITimeoutError
    assert exc.body is None
    assert not hasattr(exc, "request_id")  # no response, so the SDK has no request id
    assert isinstance(exc.__cause__, httpx2.TransportError)
    served = server.stats()["served"]
    assert served["total"] == 1  # the reply was produced and billed, then lost
    assert sum(served["dropped_by_request"].values()) == 1


def test_dropped_stream_escapes_as_transport_error(start_simulator: StartSimulator) -> None:
    """A connection cut mid-stream is not wrapped by the SDK: the transport error escapes."""
    server = start_simulator(SimulatorConfig(models=TEST_MODELS, faults=Faults(drop=1.0)))
    seen: list[str] = []
    with make_client(server) as sdk:
        stream = sdk.messages.create(**params(), stream=True)
        assert stream.response.headers["request-id"].startswith("req_")
        with stream, pytest.raises(httpx2.RemoteProtocolError):
            drain(stream, seen)
    assert seen[0] == "message_start"
    assert "message_stop" not in seen


# Behaviour the SDK documents for the models list and current request fields.


def test_models_retrieve_resolves_alias(client: anthropic.Anthropic) -> None:
    assert client.models.retrieve(MODEL).id == MODEL_ID


def test_models_list_newest_first(client: anthropic.Anthropic) -> None:
    created = [model.created_at for model in client.models.list()]
    assert created == sorted(created, reverse=True)


def test_models_list_before_id_is_the_page_just_before(client: anthropic.Anthropic) -> None:
    page = client.models.list(before_id=MODELS[5][0], limit=2)
    assert [model.id for model in page.data] == [MODELS[3][0], MODELS[4][0]]


def test_top_level_cache_control_accepted(client: anthropic.Anthropic) -> None:
    message = client.messages.create(**params(), cache_control={"type": "ephemeral"})
    assert message.stop_reason == "end_turn"
