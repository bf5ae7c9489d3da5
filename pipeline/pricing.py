"""What tokens cost: a per-model price table, and the cost of a usage.

Default prices are Anthropic's list prices in USD per million tokens, from
https://platform.claude.com/docs/en/about-claude/pricing as read on 2026-11-30. A gateway may
charge differently (MegaLLM publishes its own prices): a job sets its own in ``[pricing]``.
Cache writes are priced at the 5-minute rate (1.25x input); reads at 0.1x input; Message
Batches at half of every rate. A model not in the table has no estimate, never a guess.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeVar

from pipeline.models import Usage

PRICES_SOURCE = "https://platform.claude.com/docs/en/about-claude/pricing (read 2026-11-30)"
BATCH_DISCOUNT = 0.5
_MTOK = 1_000_000
_T = TypeVar("_T")


@dataclass(frozen=True)
class Price:
    """USD per million tokens."""

    input: float
    output: float
    cache_write: float
    cache_read: float

    @classmethod
    def from_list(cls, input: float, output: float) -> Price:
        """A model priced the usual way: cache writes 1.25x input, reads 0.1x."""
        return cls(input, output, round(input * 1.25, 6), round(input * 0.1, 6))

    def cost(self, usage: Usage, *, batch: bool = False) -> float:
        """USD for ``usage``; Message Batches at half price."""
        total = (
            usage.input_tokens * self.input
            + usage.output_tokens * self.output
            + usage.cache_creation_input_tokens * self.cache_write
            + usage.cache_read_input_tokens * self.cache_read
        ) / _MTOK
        return total * BATCH_DISCOUNT if batch else total


_FAMILIES: dict[str, Price] = {
    "claude-opus-4-6": Price.from_list(5.0, 25.0),
    "claude-opus-4-5": Price.from_list(5.0, 25.0),
    "claude-opus-4-1": Price.from_list(15.0, 75.0),
    "claude-opus-4": Price.from_list(15.0, 75.0),
    "claude-sonnet-4-6": Price.from_list(3.0, 15.0),
    "claude-sonnet-4-5": Price.from_list(3.0, 15.0),
    "claude-sonnet-4": Price.from_list(3.0, 15.0),
    "claude-3-7-sonnet": Price.from_list(3.0, 15.0),
    "claude-haiku-4-5": Price.from_list(1.0, 5.0),
    "claude-3-5-haiku": Price.from_list(0.8, 4.0),
    "claude-3-haiku": Price(0.25, 1.25, 0.30, 0.03),
}


# The shortest prefix each model caches, in tokens (same source); shorter prefixes are
# processed at the full rate and nothing is written.
_CACHE_MINIMUM = {
    "claude-opus-4-6": 4096,
    "claude-opus-4-5": 4096,
    "claude-haiku-4-5": 4096,
    "claude-3-5-haiku": 2048,
    "claude-3-haiku": 2048,
}
DEFAULT_CACHE_MINIMUM = 1024  # Sonnet 4.x, Opus 4/4.1, and a guess for other models


def _family(model: str, table: dict[str, _T]) -> _T | None:
    name = model.removesuffix("-latest")
    for family in sorted(table, key=len, reverse=True):  # "opus-4-1" before "opus-4"
        if name == family or name.startswith(family + "-"):
            return table[family]
    return None


def list_price(model: str) -> Price | None:
    """The list price of ``model`` (an alias, a dated id or ``...-latest``), or None."""
    return _family(model, _FAMILIES)


def cache_minimum(model: str) -> int:
    """The shortest prompt prefix ``model`` caches, in tokens."""
    return _family(model, _CACHE_MINIMUM) or DEFAULT_CACHE_MINIMUM
