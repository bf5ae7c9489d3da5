"""Prompt caching, billed the way the real API reports it.

A block carrying ``"cache_control": {"type": "ephemeral"}`` (``ttl`` ``"5m"``, the default,
or ``"1h"``) is a breakpoint; a top-level ``cache_control`` marks the last block. The
prefix of a breakpoint is every block up to and including it, in the order tools, system,
messages. Entries are keyed by the API key, the model and the exact content of the prefix
(``cache_control`` itself left out), so a change anywhere before a breakpoint misses.

For each request:

- read: the longest live entry found at a breakpoint or up to 20 blocks before one (the
  real API's lookback), reported as ``cache_read_input_tokens``;
- write: if the last breakpoint lies beyond what was read and its prefix is at least the
  model's minimum length (``pipeline.core.catalogue``: 1,024 to 4,096 tokens by model; one
  figure for every model when the simulator is told one), the tokens from the read point to
  the last breakpoint are written (``cache_creation_input_tokens``, split by TTL in
  ``cache_creation``), one entry per
  breakpoint whose prefix is long enough;
- ``input_tokens`` is the rest, so the three add up to what ``count_tokens`` returns.

Entries live for their TTL on the injected clock; each read starts it again. Decisions are
made when a request is admitted and take effect (``commit``) once its reply is produced, so
two identical requests in flight at once both write, as with the real API.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from itertools import accumulate
from typing import Any

from pipeline.core.catalogue import cache_minimum
from pipeline.simulator.tokenizer import Piece, request_pieces

TTL_SECONDS = {"5m": 300.0, "1h": 3600.0}
LOOKBACK_BLOCKS = 20
_PRUNE_ABOVE = 4_096


def cache_scope(api_key: str, model: str) -> str:
    """Caches are private to a key (an organization) and a model."""
    return f"{api_key}\x00{model}"


@dataclass(frozen=True)
class InputUsage:
    """How a request's input tokens are billed."""

    input_tokens: int
    cache_creation_input_tokens: int = 0
    cache_read_input_tokens: int = 0
    ephemeral_5m_input_tokens: int = 0
    ephemeral_1h_input_tokens: int = 0

    @property
    def rate_limited(self) -> int:
        """What counts against input tokens per minute: cache reads do not."""
        return self.input_tokens + self.cache_creation_input_tokens

    def fields(self) -> dict[str, Any]:
        return {
            "input_tokens": self.input_tokens,
            "cache_creation_input_tokens": self.cache_creation_input_tokens,
            "cache_read_input_tokens": self.cache_read_input_tokens,
            "cache_creation": {
                "ephemeral_5m_input_tokens": self.ephemeral_5m_input_tokens,
                "ephemeral_1h_input_tokens": self.ephemeral_1h_input_tokens,
            },
        }


@dataclass(frozen=True)
class Write:
    key: str
    ttl: float


@dataclass(frozen=True)
class CachePlan:
    """What a request reads and writes, decided at admission."""

    usage: InputUsage
    read: Write | None = None
    writes: tuple[Write, ...] = ()


@dataclass(frozen=True)
class _Mark:
    index: int
    ttl: str


def _marks(body: Mapping[str, Any], pieces: Sequence[Piece]) -> list[_Mark]:
    marks: dict[int, str] = {}
    for index, piece in enumerate(pieces):
        control = piece.block.get("cache_control") if piece.block is not None else None
        if isinstance(control, Mapping):
            marks[index] = str(control.get("ttl", "5m"))
    top = body.get("cache_control")
    blocks = [i for i, piece in enumerate(pieces) if piece.block is not None]
    if isinstance(top, Mapping) and blocks:
        marks.setdefault(blocks[-1], str(top.get("ttl", "5m")))
    return [_Mark(index, ttl) for index, ttl in sorted(marks.items())]


def breakpoints(body: Mapping[str, Any]) -> int:
    """How many cache breakpoints a request sets (a top-level marker may add one)."""
    return len(_marks(body, request_pieces(body)))


def _prefix_keys(scope: str, pieces: Sequence[Piece]) -> list[str]:
    """A key per block: a hash chained over every block up to it, markers left out."""
    digest = hashlib.sha256(scope.encode()).hexdigest()
    keys: list[str] = []
    for piece in pieces:
        block = piece.block
        plain = {k: v for k, v in block.items() if k != "cache_control"} if block else None
        material = [digest, piece.section, piece.role, piece.opens, plain]
        encoded = json.dumps(material, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        digest = hashlib.sha256(encoded.encode()).hexdigest()
        keys.append(digest)
    return keys


class PromptCache:
    """``min_tokens``: the shortest prefix cached for every model; None: each model's own."""

    def __init__(self, *, min_tokens: int | None = None, token_scale: float = 1.0) -> None:
        self.min_tokens = min_tokens
        self._scale = token_scale
        self._entries: dict[str, tuple[float, float]] = {}  # key -> (expires at, ttl)

    def _charged(self, tokens: int) -> int:
        return tokens if self._scale == 1.0 else math.ceil(tokens * self._scale)

    def _live(self, key: str, now: float) -> float | None:
        entry = self._entries.get(key)
        return entry[1] if entry is not None and entry[0] > now else None

    def plan(self, scope: str, body: Mapping[str, Any], *, now: float) -> CachePlan:
        """What ``body`` would read and write at ``now``; ``scope`` is key and model."""
        pieces = request_pieces(body)
        prefix = [self._charged(t) for t in accumulate(p.tokens for p in pieces)]
        total = prefix[-1] if prefix else 0
        marks = _marks(body, pieces)
        if not marks:
            return CachePlan(InputUsage(total))
        keys = _prefix_keys(scope, pieces)
        hit, read = -1, None
        for mark in marks:
            for index in range(mark.index, max(-1, mark.index - LOOKBACK_BLOCKS - 1), -1):
                ttl = self._live(keys[index], now)
                if ttl is not None:
                    if index > hit:
                        hit, read = index, Write(keys[index], ttl)
                    break
        read_tokens = prefix[hit] if hit >= 0 else 0
        last = marks[-1].index
        minimum = self.minimum(str(body.get("model", "")))
        if last <= hit or prefix[last] < minimum:
            return CachePlan(InputUsage(total - read_tokens, 0, read_tokens), read)
        by_ttl = {"5m": 0, "1h": 0}
        writes: list[Write] = []
        start = read_tokens
        for mark in marks:
            if mark.index <= hit:
                continue
            by_ttl[mark.ttl] += prefix[mark.index] - start
            start = prefix[mark.index]
            if prefix[mark.index] >= minimum:
                writes.append(Write(keys[mark.index], TTL_SECONDS[mark.ttl]))
        written = prefix[last] - read_tokens
        usage = InputUsage(
            total - read_tokens - written, written, read_tokens, by_ttl["5m"], by_ttl["1h"]
        )
        return CachePlan(usage, read, tuple(writes))

    def minimum(self, model: str) -> int:
        """The shortest prefix ``model`` caches, in tokens."""
        return cache_minimum(model) if self.min_tokens is None else self.min_tokens

    def commit(self, plan: CachePlan, *, now: float) -> None:
        """The request was served: refresh what it read, keep what it wrote."""
        for entry in (plan.read, *plan.writes):
            if entry is None:
                continue
            ttl = max(entry.ttl, self._live(entry.key, now) or 0.0)
            self._entries[entry.key] = (now + ttl, ttl)
        if len(self._entries) > _PRUNE_ABOVE:
            self._entries = {k: v for k, v in self._entries.items() if v[0] > now}

    def __len__(self) -> int:
        return len(self._entries)
