"""The types that cross between stages. Frozen: a stage hands them on, never edits them."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from pipeline.core.errors import PipelineError


@dataclass(frozen=True)
class Section:
    """A stretch of a document's text with a natural boundary: a PDF page, or a whole file."""

    text: str
    page: int | None = None  # 1-based page number, for PDFs


@dataclass(frozen=True)
class Attachment:
    """Raw bytes sent to the model as an ``image`` or ``document`` block (vision mode)."""

    media_type: str  # image/png, image/jpeg, application/pdf
    data: bytes = field(repr=False)
    pages: tuple[int, int] | None = None  # for a PDF part: first and last page, 1-based


@dataclass(frozen=True)
class Document:
    """One input file, read: its text in sections, or its bytes as attachments."""

    doc_id: str  # stable: derived from the source path and the content hash
    source: str  # the path as the user knows it (relative to the input root where possible)
    path: Path
    kind: Literal["text", "markdown", "pdf", "code", "image"]
    content_hash: str  # sha256 of the file's bytes
    size_bytes: int
    sections: tuple[Section, ...] = ()
    attachments: tuple[Attachment, ...] = ()
    language: str | None = None  # for code: "python", "go", ...
    notes: tuple[str, ...] = ()  # things a user should know, e.g. "decoded as cp1252"
    # A table row (readers.tables): the columns its templates name, as text; and the
    # inputs.keep_columns values, by output column, copied into its output row.
    fields: Mapping[str, str] = field(default_factory=dict, hash=False)
    kept: Mapping[str, Any] = field(default_factory=dict, hash=False)
    scanned_pages: int = 0  # pages sent as a document because the PDF has no text layer

    @property
    def text(self) -> str:
        return "\n\n".join(section.text for section in self.sections)

    @property
    def name(self) -> str:
        return self.path.name


@dataclass(frozen=True)
class Chunk:
    """A part of a document small enough for one request."""

    index: int  # 0-based
    count: int
    text: str
    tokens: int  # the conservative estimate
    pages: tuple[int, int] | None = None  # first and last page it covers, for PDFs


@dataclass(frozen=True)
class Usage:
    input_tokens: int = 0
    output_tokens: int = 0
    cache_creation_input_tokens: int = 0
    cache_read_input_tokens: int = 0

    @classmethod
    def from_api(cls, usage: Mapping[str, Any] | None) -> Usage:
        usage = usage or {}
        return cls(
            **{name: int(usage.get(name) or 0) for name in cls.__dataclass_fields__},
        )

    @property
    def total(self) -> int:
        """Every token of the usage, cached or not."""
        return (
            self.input_tokens
            + self.output_tokens
            + self.cache_creation_input_tokens
            + self.cache_read_input_tokens
        )

    @property
    def counted_input(self) -> int:
        """What counts against an input-tokens-per-minute limit (cache reads do not)."""
        return self.input_tokens + self.cache_creation_input_tokens

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            *(getattr(self, n) + getattr(other, n) for n in Usage.__dataclass_fields__),
        )


@dataclass(frozen=True)
class Reply:
    """A successful Messages API reply."""

    message_id: str
    model: str
    content: tuple[Mapping[str, Any], ...]
    stop_reason: str | None
    stop_sequence: str | None
    usage: Usage
    request_id: str | None

    @property
    def text(self) -> str:
        return "".join(str(b.get("text", "")) for b in self.content if b.get("type") == "text")

    @property
    def tool_input(self) -> Mapping[str, Any] | None:
        for block in self.content:
            if block.get("type") == "tool_use":
                value: Mapping[str, Any] = block.get("input") or {}
                return value
        return None


@dataclass(frozen=True)
class Call:
    """One Messages API request to make: ``key`` names it in results, ``params`` is the body."""

    key: str
    params: Mapping[str, Any]
    input_tokens: int  # the estimate reserved against the limits before sending

    @property
    def max_tokens(self) -> int:
        return int(self.params.get("max_tokens", 0))


@dataclass(frozen=True)
class Attempt:
    """One try at a call, as it went."""

    number: int
    started_at: float  # wall-clock seconds since the epoch
    latency_s: float
    status: int | None
    error_kind: str | None = None
    request_id: str | None = None


@dataclass(frozen=True)
class CallResult:
    """How a call ended: a reply, or the error a user can act on; and every attempt."""

    call: Call
    reply: Reply | None
    error: PipelineError | None
    attempts: tuple[Attempt, ...] = field(default=())

    @property
    def ok(self) -> bool:
        return self.reply is not None


def utc(timestamp: float) -> datetime:
    """A row's time (``started_at``, ``finished_at``): seconds since the epoch, in UTC."""
    return datetime.fromtimestamp(timestamp, UTC)
