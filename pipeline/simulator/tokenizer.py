"""The simulator's token counter: deterministic, documented, and what it charges.

No offline Claude tokenizer is published, so the simulator stands in with a rule that has
the real one's shape: English prose costs about one token per four characters, while code,
digits and non-English text cost more per character. ``/v1/messages/count_tokens`` returns
exactly what ``/v1/messages`` then charges as ``usage.input_tokens``.

The rule, piece by piece (text is split with ``_PIECE``):

- a run of ASCII letters: one token per 4 letters, rounded up ("tokenizer" = 3);
- a run of digits: one token per 3 digits, rounded up;
- a run of plain spaces: free (a space rides with the next word); a run of white space
  with a newline or tab in it: 1 (so joining two texts never costs more than their parts);
- any other ASCII character (punctuation, symbols): 1 each;
- any non-ASCII character: 1 each (CJK text is about one token per character).

A request adds fixed overheads: 3 per message, 1 per content block, 3 for a system prompt,
the JSON of each tool definition counted as text plus 10, and per attachment: an image
costs ``ceil(bytes / 750)`` (at least 85) and a PDF costs 1,500 per page it declares.
``cache_control`` markers cost nothing.

``request_pieces`` splits a request into its blocks in the order prompt caching reads them
(tools, then system, then messages), each with its share of the count, so that a cached
prefix and the rest add up to exactly what ``count_request`` charges.
"""

from __future__ import annotations

import base64
import json
import math
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Literal

_PIECE = re.compile(r"[A-Za-z]+|[0-9]+| +|\s+|.", re.DOTALL)

MESSAGE_OVERHEAD = 3
BLOCK_OVERHEAD = 1
SYSTEM_OVERHEAD = 3
TOOL_OVERHEAD = 10
PDF_TOKENS_PER_PAGE = 1_500
IMAGE_BYTES_PER_TOKEN = 750
IMAGE_MIN_TOKENS = 85
_PDF_PAGE = re.compile(rb"/Type\s*/Page(?![a-zA-Z])")


def count_text(text: str) -> int:
    """Tokens the simulator charges for ``text`` (see the module docstring)."""
    total = 0
    for piece in _PIECE.findall(text):
        first = piece[0]
        if first.isascii() and first.isalpha():
            total += -(-len(piece) // 4)
        elif first.isascii() and first.isdigit():
            total += -(-len(piece) // 3)
        elif piece.isspace() and not piece.strip(" "):
            continue
        else:
            total += 1
    return total


def _count_source(source: Mapping[str, Any]) -> int:
    kind = source.get("type")
    if kind == "text":
        return count_text(str(source.get("data", "")))
    if kind == "url":
        return count_text(str(source.get("url", ""))) + PDF_TOKENS_PER_PAGE
    data = str(source.get("data", ""))
    if source.get("media_type") == "application/pdf":
        try:
            raw = base64.b64decode(data, validate=False)
        except ValueError:
            raw = b""
        return max(1, len(_PDF_PAGE.findall(raw))) * PDF_TOKENS_PER_PAGE
    size = len(data) * 3 // 4
    return max(IMAGE_MIN_TOKENS, math.ceil(size / IMAGE_BYTES_PER_TOKEN))


def count_block(block: Mapping[str, Any]) -> int:
    kind = block.get("type")
    total = BLOCK_OVERHEAD
    if kind == "text":
        total += count_text(str(block.get("text", "")))
    elif kind in ("image", "document"):
        total += _count_source(block.get("source") or {})
        for extra in ("title", "context"):
            if isinstance(block.get(extra), str):
                total += count_text(block[extra])
    elif kind == "tool_use":
        total += count_text(str(block.get("name", ""))) + count_text(
            json.dumps(block.get("input", {}), sort_keys=True)
        )
    elif kind == "tool_result":
        total += count_content(block.get("content", ""))
    return total


def count_content(content: str | Iterable[Mapping[str, Any]] | Any) -> int:
    if isinstance(content, str):
        return count_text(content)
    if isinstance(content, list):
        return sum(count_block(block) for block in content if isinstance(block, Mapping))
    return 0


@dataclass(frozen=True)
class Piece:
    """One block of a request, in cache order, and the tokens it is charged.

    ``block`` is the block as sent (a string prompt or message becomes one text block);
    ``None`` for a message whose content is empty, which still costs its overhead.
    ``opens`` marks the first piece of a message (or of the system prompt).
    """

    section: Literal["tools", "system", "messages"]
    role: str | None
    block: Mapping[str, Any] | None
    opens: bool
    tokens: int


def _tool_tokens(tool: Mapping[str, Any]) -> int:
    described = {k: v for k, v in tool.items() if k != "cache_control"}
    return TOOL_OVERHEAD + count_text(json.dumps(described, sort_keys=True))


def _content_pieces(
    section: Literal["system", "messages"], role: str | None, content: Any, overhead: int
) -> Iterator[Piece]:
    if isinstance(content, str):
        text = {"type": "text", "text": content}
        yield Piece(section, role, text, True, overhead + count_text(content))
        return
    blocks = [b for b in content if isinstance(b, Mapping)] if isinstance(content, list) else []
    if not blocks:
        yield Piece(section, role, None, True, overhead)
        return
    for index, block in enumerate(blocks):
        extra = overhead if index == 0 else 0
        yield Piece(section, role, block, index == 0, extra + count_block(block))


def request_pieces(body: Mapping[str, Any]) -> list[Piece]:
    """The blocks of a (validated) request in cache order: tools, system, messages."""
    pieces = [
        Piece("tools", None, tool, True, _tool_tokens(tool))
        for tool in body.get("tools") or []
        if isinstance(tool, Mapping)
    ]
    system = body.get("system")
    if system:
        pieces.extend(_content_pieces("system", None, system, SYSTEM_OVERHEAD))
    for message in body.get("messages", []):
        content = message.get("content", "")
        pieces.extend(_content_pieces("messages", message.get("role"), content, MESSAGE_OVERHEAD))
    return pieces


def count_request(body: Mapping[str, Any]) -> int:
    """Input tokens of a (validated) Messages API request body."""
    return sum(piece.tokens for piece in request_pieces(body))
