"""Input tokens a whole Messages API request body may take: its text by ``estimate_text``
(``pipeline.shaping.tokens``), with fixed costs at or above the simulator's and the documented
real ones (see the constants below), PDFs by their pages and images by their size."""

from __future__ import annotations

import base64
import json
import math
import re
from collections.abc import Iterable, Mapping
from typing import Any

from pipeline.shaping.tokens import estimate_text

# Fixed costs, each at or above the simulator's (3 a message, 1 a block, 3 for a system prompt,
# 10 a tool) and above what the real API adds for its chat framing.
REQUEST_OVERHEAD = 10
MESSAGE_OVERHEAD = 5
BLOCK_OVERHEAD = 3
SYSTEM_OVERHEAD = 5
TOOL_OVERHEAD = 20
# With tools, the real API adds a tool-use system prompt: the published figures run from 159 to
# 530 tokens depending on the model and tool_choice.
TOOL_USE_PROMPT = 550
# The docs put a PDF page's text at typically 1,500-3,000 tokens, and each page is also sent as
# an image: take the top of the range (a dense page with a large image can cost more; the
# runner's count_tokens check catches that). The simulator charges 1,500, counting pages the
# same way.
PDF_TOKENS_PER_PAGE = 3_000
_PDF_PAGE = re.compile(rb"/Type\s*/Page(?![a-zA-Z])")
# An image costs about width x height / 750 tokens, after scaling to fit 1,568 px on the long
# edge; about 1,600 at most. The simulator charges by size: ceil(bytes / 750), at least 85.
IMAGE_MAX_TOKENS = 1_600
IMAGE_MAX_EDGE = 1_568
_SIM_IMAGE_BYTES_PER_TOKEN = 750
_SIM_IMAGE_MIN_TOKENS = 85
_IMAGE_HEADER_CHARS = 1 << 18  # base64 characters decoded to find an image's size


def estimate_request(params: Mapping[str, Any]) -> int:
    """Input tokens a Messages API request body may take: never fewer than the simulator's
    ``count_request`` charges for it, and with the real API's fixed costs allowed for."""
    total = REQUEST_OVERHEAD
    system = params.get("system")
    if system:
        total += SYSTEM_OVERHEAD + _content(system)
    for message in params.get("messages") or ():
        if isinstance(message, Mapping):
            total += MESSAGE_OVERHEAD + _content(message.get("content", ""))
    tools = params.get("tools") or ()
    if tools:
        total += TOOL_USE_PROMPT
    for tool in tools:
        total += TOOL_OVERHEAD + estimate_text(_json(tool))
    return total


def _json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)


def _content(content: Any) -> int:
    if isinstance(content, str):
        return estimate_text(content)
    if isinstance(content, Iterable) and not isinstance(content, bytes | Mapping):
        return sum(_block(block) for block in content if isinstance(block, Mapping))
    return 0


def _block(block: Mapping[str, Any]) -> int:
    kind = block.get("type")
    total = BLOCK_OVERHEAD
    if kind == "text":
        return total + estimate_text(str(block.get("text", "")))
    if kind in ("image", "document"):
        total += _source(block.get("source") or {})
        return total + sum(
            estimate_text(block[extra])
            for extra in ("title", "context")
            if isinstance(block.get(extra), str)
        )
    if kind == "tool_use":
        name = estimate_text(str(block.get("name", "")))
        return total + name + estimate_text(_json(block.get("input", {})))
    if kind == "tool_result":
        return total + _content(block.get("content", ""))
    # Anything else (thinking, search results, ...): all of its JSON, which covers its text.
    return total + estimate_text(_json(block))


def _source(source: Mapping[str, Any]) -> int:
    kind = source.get("type")
    if kind == "text":
        return estimate_text(str(source.get("data", "")))
    if kind == "url":  # fetched by the server: its size is unknown here
        return estimate_text(str(source.get("url", ""))) + PDF_TOKENS_PER_PAGE
    if kind == "content":
        return max(IMAGE_MAX_TOKENS, _content(source.get("content", "")))
    data = str(source.get("data", ""))
    if source.get("media_type") == "application/pdf":
        return _pdf_pages(data) * PDF_TOKENS_PER_PAGE
    return _image(data)


def _pdf_pages(data: str) -> int:
    """Pages as the simulator counts them: ``/Type /Page`` objects in the decoded bytes."""
    try:
        raw = base64.b64decode(data, validate=False)
    except ValueError:
        raw = b""
    return max(1, len(_PDF_PAGE.findall(raw)))


def _image(data: str) -> int:
    by_size = max(_SIM_IMAGE_MIN_TOKENS, math.ceil(len(data) * 3 // 4 / _SIM_IMAGE_BYTES_PER_TOKEN))
    head = data[: _IMAGE_HEADER_CHARS - _IMAGE_HEADER_CHARS % 4]
    try:
        size = image_size(base64.b64decode(head, validate=False))
    except ValueError:
        size = None
    if size is None:
        return max(by_size, IMAGE_MAX_TOKENS)
    width, height = size
    scale = min(1.0, IMAGE_MAX_EDGE / max(width, height, 1))
    by_pixels = math.ceil(width * height * scale * scale / 750)
    return max(by_size, min(by_pixels, IMAGE_MAX_TOKENS))


def image_size(head: bytes) -> tuple[int, int] | None:
    """Width and height from the first bytes of a PNG, GIF, JPEG or WebP file, if they say."""
    if head.startswith(b"\x89PNG\r\n\x1a\n") and len(head) >= 24:
        return int.from_bytes(head[16:20], "big"), int.from_bytes(head[20:24], "big")
    if head[:6] in (b"GIF87a", b"GIF89a") and len(head) >= 10:
        return int.from_bytes(head[6:8], "little"), int.from_bytes(head[8:10], "little")
    if head.startswith(b"\xff\xd8"):
        return _jpeg_size(head)
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP" and len(head) >= 30:
        chunk = head[12:16]
        if chunk == b"VP8X":
            return 1 + int.from_bytes(head[24:27], "little"), 1 + int.from_bytes(
                head[27:30], "little"
            )
        if chunk == b"VP8L":
            bits = int.from_bytes(head[21:25], "little")
            return 1 + (bits & 0x3FFF), 1 + ((bits >> 14) & 0x3FFF)
        if chunk == b"VP8 ":
            return (
                int.from_bytes(head[26:28], "little") & 0x3FFF,
                int.from_bytes(head[28:30], "little") & 0x3FFF,
            )
    return None


def _jpeg_size(head: bytes) -> tuple[int, int] | None:
    at = 2
    while at + 9 <= len(head):
        if head[at] != 0xFF:
            return None
        marker = head[at + 1]
        if marker == 0xFF:  # fill byte
            at += 1
            continue
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):  # start of frame
            height = int.from_bytes(head[at + 5 : at + 7], "big")
            return int.from_bytes(head[at + 7 : at + 9], "big"), height
        if marker == 0x01 or 0xD0 <= marker <= 0xD9:  # markers without a length
            at += 2
            continue
        at += 2 + int.from_bytes(head[at + 2 : at + 4], "big")
    return None
