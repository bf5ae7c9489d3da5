"""Check a request body the way the Messages API does, with its error types and wording.

The first problem found is reported, as the real API does; messages follow its
``field.path: what is wrong`` style so that clients' error handling sees what it would see
in production.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pipeline.core.catalogue import Model
from pipeline.simulator.cache import TTL_SECONDS, breakpoints
from pipeline.simulator.config import ServedModels, served_models
from pipeline.simulator.envelope import ApiError, invalid
from pipeline.simulator.tokenizer import count_request

_MESSAGE_KEYS = frozenset(
    {
        "model",
        "max_tokens",
        "messages",
        "system",
        "temperature",
        "top_p",
        "top_k",
        "stop_sequences",
        "stream",
        "metadata",
        "tools",
        "tool_choice",
        "service_tier",
        "thinking",
        "container",
        "mcp_servers",
        # Accepted so that current SDKs work; they change nothing in a simulated reply.
        "cache_control",
        "output_config",
        "inference_geo",
        "speed",
        "diagnostics",
        "user_profile_id",
    }
)
_COUNT_KEYS = frozenset(
    {
        "model",
        "messages",
        "system",
        "tools",
        "tool_choice",
        "thinking",
        "cache_control",
        "output_config",
        "speed",
    }
)
_BLOCK_TYPES = ("text", "image", "document", "tool_use", "tool_result")
_IMAGE_TYPES = ("image/jpeg", "image/png", "image/gif", "image/webp")
_TOOL_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,128}$")
EVERY_MODEL = served_models("both")  # what a body is checked against without a server
MAX_CACHE_BREAKPOINTS = 4


@dataclass(frozen=True)
class MessagesRequest:
    """A validated request, with what the simulator needs kept typed."""

    body: Mapping[str, Any]
    model: str  # as the reply names it: the id an alias stands for
    max_tokens: int
    stream: bool
    stop_sequences: tuple[str, ...]
    input_tokens: int


def resolve_model(name: object, served: ServedModels = EVERY_MODEL) -> Model:
    if not isinstance(name, str) or not name:
        raise invalid(
            "model: Field required" if name is None else "model: Input should be a valid string"
        )
    model = served.resolve(name)
    if model is None:
        raise ApiError(404, "not_found_error", f"model: {name}")
    return model


def _check_extra(body: Mapping[str, Any], allowed: frozenset[str]) -> None:
    for key in body:
        if key not in allowed:
            raise invalid(f"{key}: Extra inputs are not permitted")


def _check_unit_interval(body: Mapping[str, Any], key: str) -> None:
    value = body.get(key)
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise invalid(f"{key}: Input should be a valid number")
    if value < 0:
        raise invalid(f"{key}: Input should be greater than or equal to 0")
    if value > 1:
        raise invalid(f"{key}: Input should be less than or equal to 1")


def _check_cache_control(where: str, holder: Mapping[str, Any]) -> None:
    control = holder.get("cache_control")
    if control is None:
        return
    path = f"{where}.cache_control" if where else "cache_control"
    if not isinstance(control, Mapping):
        raise invalid(f"{path}: Input should be a valid dictionary")
    if control.get("type") != "ephemeral":
        raise invalid(f"{path}.type: Input should be 'ephemeral'")
    if "ttl" in control and control["ttl"] not in TTL_SECONDS:
        raise invalid(f"{path}.ttl: Input should be '5m' or '1h'")
    for key in control:
        if key not in ("type", "ttl"):
            raise invalid(f"{path}.{key}: Extra inputs are not permitted")


def _check_source(path: str, block: Mapping[str, Any]) -> None:
    source = block.get("source")
    if not isinstance(source, Mapping):
        raise invalid(f"{path}.source: Field required")
    kind = source.get("type")
    if kind == "url":
        if not isinstance(source.get("url"), str):
            raise invalid(f"{path}.source.url: Field required")
        return
    if block["type"] == "image":
        if kind != "base64":
            raise invalid(f"{path}.source.type: Input should be 'base64' or 'url'")
        if source.get("media_type") not in _IMAGE_TYPES:
            expected = ", ".join(f"'{t}'" for t in _IMAGE_TYPES)
            raise invalid(f"{path}.source.media_type: Input should be {expected}")
    elif kind == "base64":
        if source.get("media_type") != "application/pdf":
            raise invalid(f"{path}.source.media_type: Input should be 'application/pdf'")
    elif kind == "text":
        if source.get("media_type") != "text/plain":
            raise invalid(f"{path}.source.media_type: Input should be 'text/plain'")
    else:
        raise invalid(f"{path}.source.type: Input should be 'base64', 'text' or 'url'")
    if not isinstance(source.get("data"), str) or not source["data"]:
        raise invalid(f"{path}.source.data: Field required")


def _check_blocks(path: str, content: Any, *, allow_tools: bool) -> None:
    if isinstance(content, str):
        return
    if not isinstance(content, list):
        raise invalid(f"{path}: Input should be a valid string or list of content blocks")
    for index, block in enumerate(content):
        where = f"{path}.{index}"
        if not isinstance(block, Mapping) or "type" not in block:
            raise invalid(f"{where}: Unable to extract tag using discriminator 'type'")
        kind = block["type"]
        if kind not in _BLOCK_TYPES or (not allow_tools and kind != "text"):
            expected = ", ".join(f"'{t}'" for t in (_BLOCK_TYPES if allow_tools else ("text",)))
            raise invalid(
                f"{where}.type: Input tag '{kind}' found using 'type' does not match any of "
                f"the expected tags: {expected}"
            )
        if kind == "text":
            if not isinstance(block.get("text"), str):
                raise invalid(f"{where}.text: Field required")
            if not block["text"]:
                raise invalid("messages: text content blocks must be non-empty")
        elif kind in ("image", "document"):
            _check_source(where, block)
        elif kind == "tool_use" and not isinstance(block.get("id"), str):
            raise invalid(f"{where}.id: Field required")
        elif kind == "tool_result" and not isinstance(block.get("tool_use_id"), str):
            raise invalid(f"{where}.tool_use_id: Field required")
        _check_cache_control(where, block)


def _check_messages(messages: Any) -> None:
    if messages is None:
        raise invalid("messages: Field required")
    if not isinstance(messages, list):
        raise invalid("messages: Input should be a valid list")
    if not messages:
        raise invalid("messages: at least one message is required")
    for index, message in enumerate(messages):
        where = f"messages.{index}"
        if not isinstance(message, Mapping):
            raise invalid(f"{where}: Input should be a valid dictionary")
        role = message.get("role")
        if role not in ("user", "assistant"):
            raise invalid(f"{where}.role: Input should be 'user' or 'assistant'")
        if "content" not in message:
            raise invalid(f"{where}.content: Field required")
        content = message["content"]
        final_assistant = index == len(messages) - 1 and role == "assistant"
        if content in ("", []) and not final_assistant:
            raise invalid(
                f"{where}: all messages must have non-empty content except for the optional "
                "final assistant message"
            )
        _check_blocks(f"{where}.content", content, allow_tools=True)
    if messages[0].get("role") != "user":
        raise invalid('messages: first message must use the "user" role')
    _check_tool_pairs(messages)


def _ids(content: Any, kind: str, key: str) -> list[str]:
    if not isinstance(content, list):
        return []
    return [block[key] for block in content if block.get("type") == kind]


def _check_tool_pairs(messages: list[Any]) -> None:
    """Each ``tool_use`` is answered by a ``tool_result`` in the next message, and each
    ``tool_result`` answers a ``tool_use`` of the message before, as the real API demands."""
    for index, message in enumerate(messages):
        asked = _ids(message["content"], "tool_use", "id") if message["role"] == "assistant" else []
        after = messages[index + 1] if index + 1 < len(messages) else None
        answered = _ids(after["content"], "tool_result", "tool_use_id") if after else []
        missing = [i for i in asked if i not in answered]
        if missing:
            raise invalid(
                f"messages.{index}: `tool_use` ids were found without `tool_result` blocks "
                f"immediately after: {', '.join(missing)}. Each `tool_use` block must have a "
                "corresponding `tool_result` block in the next message."
            )
        if message["role"] == "user" and isinstance(message["content"], list):
            before = messages[index - 1] if index else None
            known = _ids(before["content"], "tool_use", "id") if before else []
            for position, block in enumerate(message["content"]):
                if block["type"] == "tool_result" and block["tool_use_id"] not in known:
                    raise invalid(
                        f"messages.{index}.content.{position}: unexpected `tool_use_id` found in "
                        f"`tool_result` blocks: {block['tool_use_id']}. Each `tool_result` block "
                        "must have a corresponding `tool_use` block in the previous message."
                    )


def _check_tools(body: Mapping[str, Any]) -> None:
    tools = body.get("tools")
    names: set[str] = set()
    if tools is not None:
        if not isinstance(tools, list):
            raise invalid("tools: Input should be a valid list")
        for index, tool in enumerate(tools):
            where = f"tools.{index}"
            if not isinstance(tool, Mapping):
                raise invalid(f"{where}: Input should be a valid dictionary")
            if "parameters" in tool:
                raise invalid(f"{where}.custom.parameters: Extra inputs are not permitted")
            name = tool.get("name")
            if not isinstance(name, str) or not _TOOL_NAME.match(name):
                raise invalid(
                    f"{where}.custom.name: String should match pattern '^[a-zA-Z0-9_-]{{1,128}}$'"
                )
            schema = tool.get("input_schema")
            if not isinstance(schema, Mapping):
                raise invalid(f"{where}.custom.input_schema: Field required")
            if schema.get("type") != "object":
                raise invalid(f"{where}.custom.input_schema.type: Input should be 'object'")
            if name in names:
                raise invalid(f"tools: Tool names must be unique. Duplicate name: {name}")
            _check_cache_control(f"{where}.custom", tool)
            names.add(name)
    choice = body.get("tool_choice")
    if choice is None:
        return
    if not isinstance(choice, Mapping) or choice.get("type") not in ("auto", "any", "none", "tool"):
        raise invalid(
            "tool_choice: Input tag found using 'type' does not match any of the expected tags: "
            "'auto', 'any', 'tool', 'none'"
        )
    if choice["type"] in ("any", "tool") and not names:
        raise invalid("tool_choice: tool_choice may only be specified while providing tools")
    if choice["type"] == "tool" and choice.get("name") not in names:
        raise invalid(f"tool_choice.name: Tool '{choice.get('name')}' not found in provided tools")


def _check_common(body: Mapping[str, Any], served: ServedModels) -> Model:
    model = resolve_model(body.get("model"), served)
    _check_messages(body.get("messages"))
    system = body.get("system")
    if system is not None:
        _check_blocks("system", system, allow_tools=False)
    _check_tools(body)
    _check_cache_control("", body)
    found = breakpoints(body)
    if found > MAX_CACHE_BREAKPOINTS:
        raise invalid(
            f"A maximum of {MAX_CACHE_BREAKPOINTS} blocks with cache_control may be provided. "
            f"Found {found}."
        )
    return model


def charged_tokens(body: Mapping[str, Any], scale: float) -> int:
    count = count_request(body)
    return count if scale == 1.0 else math.ceil(count * scale)


def validate_count_tokens(
    body: Any, *, token_scale: float = 1.0, served: ServedModels = EVERY_MODEL
) -> int:
    """Validate a count_tokens body; return its input tokens."""
    if not isinstance(body, Mapping):
        raise invalid("Request body must be a JSON object")
    _check_extra(body, _COUNT_KEYS)
    _check_common(body, served)
    return charged_tokens(body, token_scale)


def validate_messages(
    body: Any, *, token_scale: float = 1.0, served: ServedModels = EVERY_MODEL
) -> MessagesRequest:
    """Validate a Messages body against the ``served`` models (by default every model the
    table knows, for checks without a server)."""
    if not isinstance(body, Mapping):
        raise invalid("Request body must be a JSON object")
    _check_extra(body, _MESSAGE_KEYS)
    model = _check_common(body, served)
    max_tokens = body.get("max_tokens")
    if max_tokens is None:
        raise invalid("max_tokens: Field required")
    if isinstance(max_tokens, bool) or not isinstance(max_tokens, int):
        raise invalid("max_tokens: Input should be a valid integer")
    if max_tokens < 1:
        raise invalid("max_tokens: Input should be greater than or equal to 1")
    if max_tokens > model.max_output:
        raise invalid(
            f"max_tokens: {max_tokens} > {model.max_output}, which is the maximum allowed "
            f"number of output tokens for {model.id}"
        )
    for key in ("temperature", "top_p"):
        _check_unit_interval(body, key)
    top_k = body.get("top_k")
    if top_k is not None and (isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 0):
        raise invalid("top_k: Input should be greater than or equal to 0")
    stops = body.get("stop_sequences") or []
    if not isinstance(stops, list) or not all(isinstance(s, str) for s in stops):
        raise invalid("stop_sequences: Input should be a valid list of strings")
    if any(not s.strip() for s in stops):
        raise invalid("stop_sequences: each stop sequence must contain non-whitespace")
    stream = body.get("stream", False)
    if not isinstance(stream, bool):
        raise invalid("stream: Input should be a valid boolean")
    input_tokens = charged_tokens(body, token_scale)
    if input_tokens > model.window:
        raise invalid(f"prompt is too long: {input_tokens} tokens > {model.window} maximum")
    return MessagesRequest(
        body=body,
        model=model.id,
        max_tokens=max_tokens,
        stream=stream,
        stop_sequences=tuple(stops),
        input_tokens=input_tokens,
    )
