"""Tier limits (``Limits``, ``TIERS``), the token bucket that enforces one per-minute limit,
and the injected clock and sleep.

The server enforces each per-minute limit as a token bucket refilled continuously (see
``shared/reference/messages-api.md``): the simulator's buckets enforce them, and the pacer
(``pipeline.engine.pacer``) mirrors them on the client.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, fields

from pipeline.core.errors import ConfigError

Clock = Callable[[], float]
# The longest pause one reply can impose (a 429's retry-after): every request waits it out,
# so a server's "retry after a week" (or inf, or a date in 2099) is cut to this, and logged.
MAX_PAUSE_S = 300.0
Sleep = Callable[[float], Awaitable[None]]


@dataclass(frozen=True)
class Limits:
    """A tier's rate limits. ``None`` means unlimited.

    ``tokens_per_minute`` is one combined input+output budget, the way MegaLLM states its
    tiers; ``input_tokens_per_minute`` / ``output_tokens_per_minute`` are the split budgets
    Anthropic states. ``per_second`` says the server enforces them per second (its buckets
    hold one second's worth): the simulator enforces that; the pacer always paces so.
    """

    requests_per_minute: int | None = None
    tokens_per_minute: int | None = None
    input_tokens_per_minute: int | None = None
    output_tokens_per_minute: int | None = None
    max_concurrency: int | None = None
    per_second: bool = False

    def __post_init__(self) -> None:
        for f in fields(self):
            if f.name == "per_second":
                continue
            value = getattr(self, f.name)
            if value is not None and (
                isinstance(value, bool) or not isinstance(value, int) or value < 1
            ):
                raise ConfigError(
                    f"limits.{f.name}: must be a whole number of at least 1, got {value!r}"
                )

    @property
    def unlimited(self) -> bool:
        return all(getattr(self, f.name) is None for f in fields(self) if f.name != "per_second")

    def per_minute(self, resource: str) -> int | None:
        value: int | None = getattr(self, f"{resource}_per_minute")
        return value


TIERS: dict[str, Limits] = {
    # MegaLLM's published tiers (see shared/reference/messages-api.md).
    "basic": Limits(requests_per_minute=50, tokens_per_minute=100_000, max_concurrency=10),
    "pro": Limits(requests_per_minute=200, tokens_per_minute=400_000, max_concurrency=40),
}


class TokenBucket:
    """A bucket refilled continuously at ``per_minute / 60`` a second.

    It holds a minute's worth, or a second's with ``per_second`` (at least one unit). Taking
    more than there is leaves it in debt. A level set above capacity (by server feedback) is
    kept until used; refilling never takes a bucket past its capacity.
    """

    def __init__(self, per_minute: int, *, per_second: bool, clock: Clock) -> None:
        self.per_minute = per_minute
        self.rate = per_minute / 60.0
        self.capacity = max(1.0, self.rate) if per_second else float(per_minute)
        self._clock = clock
        self._level = self.capacity
        self._stamp = clock()

    def level(self) -> float:
        now = self._clock()
        if self._level < self.capacity:
            self._level = min(self.capacity, self._level + (now - self._stamp) * self.rate)
        self._stamp = now
        return self._level

    def wait_for(self, amount: float) -> float:
        """Seconds until ``amount`` could be taken (0 if it can be now)."""
        need = min(amount, self.capacity)
        short = need - self.level()
        return max(0.0, short / self.rate)

    def take(self, amount: float) -> None:
        self.level()
        self._level -= amount

    def refund(self, amount: float) -> None:
        self._level = min(max(self.capacity, self._level), self.level() + amount)

    def set_level(self, level: float) -> None:
        self.level()
        self._level = level

    def seconds_to_full(self) -> float:
        return max(0.0, (self.capacity - self.level()) / self.rate)
