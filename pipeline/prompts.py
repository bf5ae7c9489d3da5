"""Render a job's templates into Messages API request bodies.

Templates are checked at load (``pipeline.spec``): they name only known placeholders, with
no attribute access, indexing or formats, so rendering is plain substitution and a
document's own braces are never interpreted.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from typing import Any

from pipeline.models import Attachment, Chunk, Document
from pipeline.spec import Job


def placeholders(document: Document, chunk: Chunk | None, text: str) -> dict[str, str]:
    pages = ""
    if chunk is not None and chunk.pages is not None:
        first, last = chunk.pages
        pages = str(first) if first == last else f"{first}-{last}"
    return {
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
