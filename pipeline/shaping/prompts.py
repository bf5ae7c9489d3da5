"""Render a job's templates into Messages API request bodies.

Templates are checked at load (``pipeline.config.checks``): they name only known placeholders, with
no attribute access, indexing or formats, so rendering is plain substitution and a
document's own braces are never interpreted. Every value is made valid Unicode first: a file
name's undecodable bytes and a PDF's broken text map must not stop a request being encoded.
"""

from __future__ import annotations

import base64
import re
import string
from collections.abc import Mapping
from functools import lru_cache
from typing import Any

from pipeline.config.spec import Job
from pipeline.core.catalogue import cache_minimum
from pipeline.core.models import Attachment, Chunk, Document
from pipeline.shaping.repomap import map_for
from pipeline.shaping.request_tokens import estimate_request
from pipeline.shaping.tokens import estimate_text

_SURROGATE = re.compile("[\ud800-\udfff]")


def sendable(value: str) -> str:
    """``value`` as a JSON body can carry it (UTF-8). A lone surrogate cannot be encoded: one
    that stands for a file name's undecodable byte becomes ``\\xe9``, as in the row's
    ``source``; any other (a PDF's broken text map) becomes U+FFFD."""
    if value.isascii():
        return value
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        try:
            return value.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
        except UnicodeEncodeError:
            return _SURROGATE.sub("\ufffd", value)
    return value


def placeholders(document: Document, chunk: Chunk | None, text: str) -> dict[str, str]:
    pages = ""
    if chunk is not None and chunk.pages is not None:
        first, last = chunk.pages
        pages = str(first) if first == last else f"{first}-{last}"
    values = {
        **document.fields,  # a table row's columns; the built-in names below win
        "text": text,
        "path": str(document.path),
        "name": document.name,
        "source": document.source,
        "doc_id": document.doc_id,
        "chunk_index": str(chunk.index + 1 if chunk else 1),
        "chunk_count": str(chunk.count if chunk else 1),
        "pages": pages,
        "language": document.language or "",
    }
    return {key: sendable(value) for key, value in values.items()}


def render(template: str, values: Mapping[str, str]) -> str:
    return template.format_map(values)


@lru_cache(maxsize=16)
def head_of(template: str) -> str:
    """The template's text before its first placeholder, as rendered: the same in every
    request, so it can be cached with the system prompt."""
    for literal, field, _, _ in string.Formatter().parse(template):
        return literal if field is not None else ""
    return ""


@lru_cache(maxsize=64)
def worth_caching(job: Job, head: str) -> bool:
    """Is the shared prefix (system prompt and template head) long enough to be cached?
    Below the model's minimum the API caches nothing, so nothing is marked."""
    if not job.spec.prompt.cache:
        return False
    return _shared_tokens(job, head) >= cache_minimum(job.spec.model.name)


def _shared_tokens(job: Job, head: str) -> int:
    return estimate_text(job.spec.prompt.system) + map_tokens(job) + estimate_text(head)


def map_tokens(job: Job) -> int:
    """The repository map's estimated tokens (``review.map_tokens``); 0 without one."""
    found = map_for(job)
    return found.tokens if found is not None else 0


def cached_prefix_tokens(job: Job) -> int:
    """The estimated tokens of the prefix every request shares and marks for caching (the
    system prompt, the repository map and the template's head); 0 when it is too short to
    be cached."""
    head = head_of(job.template)
    return _shared_tokens(job, head) if worth_caching(job, head) else 0


def _cached(block: dict[str, Any], job: Job) -> dict[str, Any]:
    marker = {"type": "ephemeral"}
    if job.spec.prompt.cache_ttl == "1h":
        marker["ttl"] = "1h"
    return {**block, "cache_control": marker}


def _block(attachment: Attachment) -> dict[str, Any]:
    kind = "document" if attachment.media_type == "application/pdf" else "image"
    data = base64.b64encode(attachment.data).decode("ascii")
    return {
        "type": kind,
        "source": {"type": "base64", "media_type": attachment.media_type, "data": data},
    }


def request_params(
    job: Job,
    prompt: str,
    *,
    head: str = "",
    attachment: Attachment | None = None,
    structured: bool = False,
) -> dict[str, Any]:
    """A complete request body for one call. ``prompt`` starts with ``head``, the part of the
    template every request shares: with the system prompt (and the repository map, when the
    job has one) it is marked for prompt caching (one breakpoint, at its end) when it is long
    enough to be cached."""
    model = job.spec.model
    system = job.spec.prompt.system
    if attachment is not None:
        head = ""  # the document comes first: only the system prompt is shared
    cache = worth_caching(job, head)
    content: str | list[dict[str, Any]] = prompt
    if attachment is not None:
        content = [_block(attachment), {"type": "text", "text": prompt}]
    elif cache and head and prompt.startswith(head) and len(prompt) > len(head):
        content = [
            _cached({"type": "text", "text": head}, job),
            {"type": "text", "text": prompt[len(head) :]},
        ]
    else:
        head = ""
    params: dict[str, Any] = {
        "model": model.name,
        "max_tokens": model.max_tokens,
        "messages": [{"role": "user", "content": content}],
    }
    repo = map_for(job)
    if repo is not None:  # the system prompt, then the map: both the same in every request
        blocks = [{"type": "text", "text": text} for text in (system, repo.text) if text]
        if cache and not head:
            blocks[-1] = _cached(blocks[-1], job)
        params["system"] = blocks
    elif system:
        params["system"] = (
            [_cached({"type": "text", "text": system}, job)] if cache and not head else system
        )
    params.update(_settings(job, structured=structured))
    return params


def _settings(job: Job, *, structured: bool) -> dict[str, Any]:
    """The sampling settings the job sets, and the tool a structured answer is recorded with."""
    model = job.spec.model
    settings: dict[str, Any] = {}
    if model.temperature is not None:
        settings["temperature"] = model.temperature
    if model.top_p is not None:
        settings["top_p"] = model.top_p
    if model.stop_sequences:
        settings["stop_sequences"] = list(model.stop_sequences)
    if structured:
        settings.update(structured_tool(job))
    return settings


def structured_tool(job: Job) -> dict[str, Any]:
    """The request fields that ask for the job's structured output (its tool, forced); none
    for a job without one."""
    schema = job.spec.structured
    if schema is None:
        return {}
    tool = {"name": schema.tool_name, "description": schema.description}
    return {
        "tools": [{**tool, "input_schema": schema.schema_}],
        "tool_choice": {"type": "tool", "name": schema.tool_name},
    }


def history_cached(job: Job, params: dict[str, Any]) -> dict[str, Any]:
    """``params`` with the last block of their last message marked for prompt caching, when
    the request is long enough to be cached by the model (its minimum, from the catalogue):
    a conversation's history, so that the next turn reads it at cache prices."""
    if not job.spec.prompt.cache or estimate_request(params) < cache_minimum(job.spec.model.name):
        return params
    *earlier, last = params["messages"]
    content = last["content"]
    blocks = [{"type": "text", "text": content}] if isinstance(content, str) else list(content)
    blocks[-1] = _cached(blocks[-1], job)
    return {**params, "messages": [*earlier, {**last, "content": blocks}]}
