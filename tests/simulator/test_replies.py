"""Replies are derived from the request: traceable, cut by max_tokens, ended by stop sequences."""

from __future__ import annotations

import json
import random
from typing import Any

import httpx
import jsonschema
import pytest
from hypothesis import given
from hypothesis import strategies as st

from pipeline.simulator import SimulatorServer, count_text, request_digest
from pipeline.simulator.replies import schema_value
from tests.simulator.support import body, call


def text_of(reply: dict[str, Any]) -> str:
    return "".join(block["text"] for block in reply["content"] if block["type"] == "text")


def test_same_request_same_reply_and_it_names_the_request(simulator: SimulatorServer) -> None:
    payload = body("Summarize the quarterly report of Acme Corp.")
    first, second = call(simulator, payload).json(), call(simulator, payload).json()
    assert text_of(first) == text_of(second)
    assert first["id"] != second["id"]  # each reply is its own message
    assert text_of(first).startswith(f"Reply {request_digest(payload)[:12]} to: Summarize")
    other = call(simulator, body("Summarize the annual report of Acme Corp.")).json()
    assert text_of(other) != text_of(first)


def test_usage_counts_the_reply_with_the_documented_rule(simulator: SimulatorServer) -> None:
    reply = call(simulator, body("One two three.")).json()
    assert reply["stop_reason"] == "end_turn"
    assert reply["usage"]["output_tokens"] == count_text(text_of(reply))
    assert 40 <= reply["usage"]["output_tokens"] <= 125


def test_max_tokens_cuts_the_reply(simulator: SimulatorServer) -> None:
    reply = call(simulator, body("Describe everything in detail.", max_tokens=12)).json()
    assert reply["stop_reason"] == "max_tokens"
    assert reply["usage"]["output_tokens"] == 12
    assert count_text(text_of(reply)) <= 12


def test_stop_sequence_ends_the_reply(simulator: SimulatorServer) -> None:
    reply = call(simulator, body("alpha beta END gamma", stop_sequences=["END", "never"])).json()
    assert reply["stop_reason"] == "stop_sequence"
    assert reply["stop_sequence"] == "END"
    assert text_of(reply).endswith("alpha beta ")


def test_streamed_reply_carries_the_same_text(simulator: SimulatorServer) -> None:
    payload = body("Stream this document please.")
    plain = call(simulator, payload).json()
    stream = call(simulator, {**payload, "stream": True})
    assert stream.headers["content-type"].startswith("text/event-stream")
    events = [line[7:] for line in stream.text.splitlines() if line.startswith("event: ")]
    assert events[:3] == ["message_start", "content_block_start", "ping"]
    assert events[-3:] == ["content_block_stop", "message_delta", "message_stop"]

    deltas = [
        json.loads(line[6:])["delta"]["text"]
        for line in stream.text.splitlines()
        if line.startswith("data: ") and '"text_delta"' in line
    ]
    assert "".join(deltas) == text_of(plain)


SCHEMA = {
    "type": "object",
    "properties": {
        "findings": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "severity": {"type": "string", "enum": ["low", "medium", "high"]},
                    "line": {"type": "integer", "minimum": 1, "maximum": 5000},
                    "message": {"type": "string", "maxLength": 200},
                    "confidence": {"type": "number", "minimum": 0, "maximum": 1},
                    "fixed": {"type": ["boolean", "null"]},
                },
                "required": ["severity", "line", "message"],
            },
            "minItems": 1,
        },
        "summary": {"type": "string"},
        "reviewed_on": {"type": "string", "format": "date"},
    },
    "required": ["findings", "summary"],
}


def test_forced_tool_gives_input_that_fits_the_schema(simulator: SimulatorServer) -> None:
    payload = body(
        "Review this file.",
        max_tokens=1_000,
        tools=[{"name": "report", "description": "Report findings", "input_schema": SCHEMA}],
        tool_choice={"type": "tool", "name": "report"},
    )
    reply = call(simulator, payload).json()
    assert reply["stop_reason"] == "tool_use"
    [block] = reply["content"]
    assert block["type"] == "tool_use"
    assert block["name"] == "report"
    jsonschema.validate(block["input"], SCHEMA)
    assert call(simulator, payload).json()["content"][0]["input"] == block["input"]


def test_tool_input_cut_by_max_tokens(simulator: SimulatorServer) -> None:
    payload = body(
        "Review this file.",
        max_tokens=5,
        tools=[{"name": "report", "input_schema": SCHEMA}],
        tool_choice={"type": "any"},
    )
    reply = call(simulator, payload).json()
    assert reply["stop_reason"] == "max_tokens"


_leaf = st.sampled_from(
    [
        {"type": "string"},
        {"type": "integer", "minimum": -5, "maximum": 5},
        {"type": "number"},
        {"type": "boolean"},
        {"type": "null"},
        {"enum": ["a", "b"]},
        {"type": "string", "minLength": 3, "maxLength": 8},
    ]
)
_schemas = st.recursive(
    _leaf,
    lambda inner: st.one_of(
        st.builds(lambda items: {"type": "array", "items": items}, inner),
        st.dictionaries(st.from_regex(r"[a-z]{1,8}", fullmatch=True), inner, max_size=4).map(
            lambda props: {"type": "object", "properties": props, "required": sorted(props)}
        ),
    ),
    max_leaves=12,
)


@given(schema=_schemas, seed=st.integers(0, 2**32))
def test_schema_values_always_validate(schema: dict[str, Any], seed: int) -> None:
    jsonschema.validate(schema_value(schema, random.Random(seed)), schema)


@pytest.mark.parametrize("count", [1, 3])
def test_list_of_models(simulator: SimulatorServer, count: int) -> None:

    reply = httpx.get(
        f"{simulator.url}/v1/models",
        params={"limit": count},
        headers={"x-api-key": simulator.api_key, "anthropic-version": "2023-06-01"},
    ).json()
    assert len(reply["data"]) == count
    assert reply["has_more"] is True
    assert reply["first_id"] == reply["data"][0]["id"]
