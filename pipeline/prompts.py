"""Render a job's templates into Messages API request bodies.

Templates are checked at load (``pipeline.spec``): they name only known placeholders, with
no attribute access, indexing or formats, so rendering is plain substitution and a
document's own braces are never interpreted. Every value is made valid Unicode first: a file
name's undecodable bytes and a PDF's broken text map must not stop a request being encoded.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Mapping
from typing import Any

from pipeline.models import Attachment, Chunk, Document
from pipeline.spec import Job

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
    attachment: Attachment | None = None,
    structured: bool = False,
) -> dict[str, Any]:
    """A complete request body for one call."""
    model = job.spec.model
    content: str | list[dict[str, Any]] = prompt
    if attachment is not None:
        content = [_block(attachment), {"type": "text", "text": prompt}]
    params: dict[str, Any] = {
        "model": model.name,
        "max_tokens": model.max_tokens,
        "messages": [{"role": "user", "content": content}],
    }
    if job.spec.prompt.system:
        params["system"] = job.spec.prompt.system
    if model.temperature is not None:
        params["temperature"] = model.temperature
    if model.top_p is not None:
        params["top_p"] = model.top_p
    if model.stop_sequences:
        params["stop_sequences"] = list(model.stop_sequences)
    schema = job.spec.structured
    if structured and schema is not None:
        params["tools"] = [
            {
                "name": schema.tool_name,
                "description": schema.description,
                "input_schema": schema.schema_,
            }
        ]
        params["tool_choice"] = {"type": "tool", "name": schema.tool_name}
    return params
