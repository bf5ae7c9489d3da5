"""Replies derived deterministically from the request.

The same request body always gets the same content, so a test can tell which document
produced which answer: a text reply starts ``Reply <digest12> to:`` (``request_digest`` of the
body, without ``stream``) and goes on with words of the last user message, so stop sequences
that occur in the prompt can occur in the reply. Its natural length is drawn from
``reply_tokens`` by the digest; ``max_tokens`` cuts it (stop_reason ``max_tokens``), the first
stop sequence ends it (``stop_sequence``). A forced tool (``tool_choice`` ``tool`` or ``any``)
gives one ``tool_use`` block whose ``input`` fits the tool's ``input_schema``; with
``tool_choice`` ``auto`` (or none) the model calls tools for a few rounds, then the last tool
offered or a text answer (``turns``).
"""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from pipeline.simulator import turns
from pipeline.simulator.cache import InputUsage
from pipeline.simulator.tokenizer import count_text
from pipeline.simulator.validation import MessagesRequest

_FILLER = [
    "the",
    "document",
    "describes",
    "a",
    "process",
    "in",
    "several",
    "steps",
    "and",
    "notes",
    "the",
    "main",
    "risks",
    "and",
    "the",
    "open",
    "questions",
    "that",
    "remain",
    "for",
    "the",
    "next",
    "review",
]
_TOOL_OVERHEAD_TOKENS = 12


def request_digest(body: Mapping[str, Any]) -> str:
    """Identity of a request: what it asks, not how it is delivered (``stream`` left out)."""
    canonical = {k: v for k, v in body.items() if k != "stream"}
    encoded = json.dumps(canonical, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(encoded.encode()).hexdigest()


@dataclass(frozen=True)
class Reply:
    content: tuple[dict[str, Any], ...]
    stop_reason: str
    stop_sequence: str | None
    output_tokens: int


def _last_user_words(body: Mapping[str, Any]) -> list[str]:
    for message in reversed(body["messages"]):
        if message["role"] != "user":
            continue
        content = message["content"]
        if isinstance(content, str):
            return content.split()
        words: list[str] = []
        for block in content:
            if block.get("type") == "text":
                words.extend(block["text"].split())
        return words
    return []


def _text_reply(request: MessagesRequest, digest: str, natural: int) -> Reply:
    source = _last_user_words(request.body) or _FILLER
    words = ["Reply", digest[:12], "to:"]
    tokens = sum(count_text(w) for w in words)
    position = 0
    while tokens < natural:
        word = source[position % len(source)]
        words.append(word)
        tokens += count_text(word)
        position += 1
    text = " ".join(words)
    stop_reason, stop_sequence = "end_turn", None
    hits = [(text.find(s), s) for s in request.stop_sequences if s in text]
    if hits:
        cut, stop_sequence = min(hits)
        text, stop_reason = text[:cut], "stop_sequence"
    if count_text(text) > request.max_tokens:
        kept: list[str] = []
        used = 0
        for word in text.split(" "):
            cost = count_text(word)
            if used + cost > request.max_tokens:
                break
            kept.append(word)
            used += cost
        text, stop_reason, stop_sequence = " ".join(kept), "max_tokens", None
        return Reply(({"type": "text", "text": text},), stop_reason, None, request.max_tokens)
    return Reply(({"type": "text", "text": text},), stop_reason, stop_sequence, count_text(text))


def schema_value(
    schema: Mapping[str, Any], rng: random.Random, name: str = "value", depth: int = 0
) -> Any:
    """A value that fits a JSON schema (the subset tool definitions use)."""
    if "const" in schema:
        return schema["const"]
    if schema.get("enum"):
        return rng.choice(list(schema["enum"]))
    for key in ("anyOf", "oneOf", "allOf"):
        if schema.get(key):
            return schema_value(schema[key][0], rng, name, depth)
    kind = schema.get("type", "object" if "properties" in schema else "string")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind == "object":
        if depth > 6:
            return {}
        props = schema.get("properties", {})
        return {key: schema_value(sub, rng, key, depth + 1) for key, sub in props.items()}
    if kind == "array":
        low = int(schema.get("minItems", 1))
        high = max(low, min(int(schema.get("maxItems", low + 2)), low + 2))
        items = schema.get("items", {"type": "string"})
        return [schema_value(items, rng, name, depth + 1) for _ in range(rng.randint(low, high))]
    if kind == "integer":
        low = int(schema.get("minimum", 0))
        return rng.randint(low, int(schema.get("maximum", low + 100)))
    if kind == "number":
        floor = float(schema.get("minimum", 0.0))
        return round(rng.uniform(floor, float(schema.get("maximum", floor + 100.0))), 3)
    if kind == "boolean":
        return rng.random() < 0.5
    if kind == "null":
        return None
    return _schema_string(schema, rng, name)


def _schema_string(schema: Mapping[str, Any], rng: random.Random, name: str) -> str:
    fmt = schema.get("format")
    if fmt == "date":
        return f"2025-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"
    if fmt == "date-time":
        return f"2025-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}T12:00:00Z"
    text = f"{name} {' '.join(rng.sample(_FILLER, 3))}"
    low = int(schema.get("minLength", 0))
    high = int(schema.get("maxLength", max(low, len(text))))
    return text.ljust(low, "x")[:high]


def _tool_reply(
    request: MessagesRequest, digest: str, tool_rounds: tuple[int, int] = (1, 3)
) -> Reply | None:
    body = request.body
    choice = body.get("tool_choice") or {}
    tools = body.get("tools") or []
    if choice.get("type") == "tool":
        tool = next(t for t in tools if t["name"] == choice["name"])
    elif choice.get("type") == "any":
        tool = tools[0]
    elif turns.auto_mode(body):
        tool = turns.pick_tool(body, digest, tool_rounds)
        if tool is None:
            return None
    else:
        return None
    rng = random.Random(digest)
    value = turns.plausible_input(tool, body, schema_value(tool["input_schema"], rng), rng)
    tokens = _TOOL_OVERHEAD_TOKENS + count_text(json.dumps(value))
    block = {"type": "tool_use", "id": f"toolu_{digest[:24]}", "name": tool["name"], "input": value}
    if tokens > request.max_tokens:
        # Cut short, the model never finished writing the tool's arguments.
        return Reply(({**block, "input": {}},), "max_tokens", None, request.max_tokens)
    return Reply((block,), "tool_use", None, tokens)


def make_reply(
    request: MessagesRequest,
    digest: str,
    reply_tokens: tuple[int, int],
    tool_rounds: tuple[int, int] = (1, 3),
) -> Reply:
    tool = _tool_reply(request, digest, tool_rounds)
    if tool is not None:
        return tool
    low, high = reply_tokens
    natural = low + int(digest[:8], 16) % (high - low + 1)
    return _text_reply(request, digest, natural)


def message_body(
    reply: Reply,
    *,
    message_id: str,
    model: str,
    billed: InputUsage,
    service_tier: str = "standard",
) -> dict[str, Any]:
    return {
        "id": message_id,
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": list(reply.content),
        "stop_reason": reply.stop_reason,
        "stop_sequence": reply.stop_sequence,
        "usage": usage(billed, reply.output_tokens, service_tier),
    }


def usage(billed: InputUsage, output_tokens: int, service_tier: str = "standard") -> dict[str, Any]:
    return {**billed.fields(), "output_tokens": output_tokens, "service_tier": service_tier}


def sse(event: str, data: Mapping[str, Any]) -> bytes:
    return f"event: {event}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n".encode()


def _pieces(text: str, size: int = 24) -> Iterator[str]:
    for start in range(0, len(text), size):
        yield text[start : start + size]


def stream_events(
    reply: Reply, *, message_id: str, model: str, billed: InputUsage
) -> Iterator[tuple[bytes, int]]:
    """The SSE events of a streamed reply, each with the output tokens it carries."""
    start = message_body(reply, message_id=message_id, model=model, billed=billed)
    start.update(content=[], stop_reason=None, stop_sequence=None, usage=usage(billed, 1))
    yield sse("message_start", {"type": "message_start", "message": start}), 0
    for index, block in enumerate(reply.content):
        if block["type"] == "text":
            opened: dict[str, Any] = {"type": "text", "text": ""}
            pieces = [{"type": "text_delta", "text": p} for p in _pieces(block["text"])]
        else:
            opened = {**block, "input": {}}
            raw = json.dumps(block["input"]) if block["input"] else ""
            pieces = [{"type": "input_json_delta", "partial_json": p} for p in _pieces(raw)]
        yield (
            sse(
                "content_block_start",
                {"type": "content_block_start", "index": index, "content_block": opened},
            ),
            0,
        )
        if index == 0:
            yield sse("ping", {"type": "ping"}), 0
        share = reply.output_tokens // max(1, len(pieces))
        for delta in pieces:
            yield (
                sse(
                    "content_block_delta",
                    {"type": "content_block_delta", "index": index, "delta": delta},
                ),
                share,
            )
        yield sse("content_block_stop", {"type": "content_block_stop", "index": index}), 0
    yield (
        sse(
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": reply.stop_reason, "stop_sequence": reply.stop_sequence},
                "usage": {"output_tokens": reply.output_tokens},
            },
        ),
        0,
    )
    yield sse("message_stop", {"type": "message_stop"}), 0
