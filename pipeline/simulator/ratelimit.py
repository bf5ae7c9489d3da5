"""Tier limits as the real API enforces them: token buckets refilled continuously.

Each per-minute limit is a bucket holding one minute's worth (one second's worth with
``per_second``) that refills at ``limit / 60`` per second. A request is admitted when every
bucket it needs has room:

- requests: one unit;
- input tokens (or the combined tokens budget): the request's input tokens. A request larger
  than the whole bucket is admitted when the bucket is full, leaving it in debt, so a
  large-but-valid request is slowed, never refused forever;
- output tokens: counted as they are produced, after the reply (``max_tokens`` is not
  reserved up front); a new request needs the bucket to be out of debt;
- concurrency: fewer replies in progress than the cap.

A refusal names the binding limit and how long until it would admit the same request.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime

from pipeline.core.limits import Clock, Limits, TokenBucket


@dataclass(frozen=True)
class Refusal:
    """Why a request was refused: the binding limit and when to try again."""

    limit: str
    retry_after: float
    message: str


_UNITS = {
    "requests": "requests",
    "tokens": "tokens",
    "input_tokens": "input tokens",
    "output_tokens": "output tokens",
}


class RateLimiter:
    def __init__(self, limits: Limits, *, clock: Clock, wall: Clock, round_remaining: bool) -> None:
        self.limits = limits
        self._clock = clock
        self._wall = wall
        self._round = round_remaining
        self.in_flight = 0

        def bucket(per_minute: int | None) -> TokenBucket | None:
            if per_minute is None:
                return None
            return TokenBucket(per_minute, per_second=limits.per_second, clock=clock)

        self.buckets: dict[str, TokenBucket | None] = {
            "requests": bucket(limits.requests_per_minute),
            "tokens": bucket(limits.tokens_per_minute),
            "input_tokens": bucket(limits.input_tokens_per_minute),
            "output_tokens": bucket(limits.output_tokens_per_minute),
        }

    def _needs(self, input_tokens: int) -> dict[str, float]:
        # Output buckets only need to be out of debt: a sliver of room.
        return {
            "requests": 1.0,
            "tokens": float(input_tokens),
            "input_tokens": float(input_tokens),
            "output_tokens": 1e-9,
        }

    def admit(self, input_tokens: int) -> Refusal | None:
        """Take what the request needs from every bucket, or say why not (taking nothing)."""
        cap = self.limits.max_concurrency
        if cap is not None and self.in_flight >= cap:
            return Refusal(
                "concurrency",
                1.0,
                f"Number of concurrent requests has exceeded your rate limit of {cap}. "
                "Please try again later or reduce the number of parallel requests.",
            )
        needs = self._needs(input_tokens)
        for name, bucket in self.buckets.items():
            if bucket is None:
                continue
            wait = bucket.wait_for(needs[name])
            if wait > 0:
                scope = "per second" if self.limits.per_second else "per minute"
                return Refusal(
                    name,
                    wait,
                    f"This request would exceed your organization's rate limit of "
                    f"{bucket.per_minute:,} {_UNITS[name]} per minute (enforced {scope}). "
                    "Please reduce the prompt length or the rate of requests, or wait "
                    "before trying again.",
                )
        for name in ("requests", "tokens", "input_tokens"):
            bucket = self.buckets[name]
            if bucket is not None:
                bucket.take(needs[name])
        self.in_flight += 1
        return None

    def release(self, *, input_tokens: int, output_tokens: int, refund_input: bool) -> None:
        """A reply ended: charge what it produced, or give back input it never used."""
        self.in_flight -= 1
        for name in ("tokens", "input_tokens"):
            bucket = self.buckets[name]
            if bucket is not None and refund_input:
                bucket.refund(input_tokens)
        for name in ("tokens", "output_tokens"):
            bucket = self.buckets[name]
            if bucket is not None and output_tokens:
                bucket.take(output_tokens)

    def headers(self) -> dict[str, str]:
        """The ``anthropic-ratelimit-*`` headers for the current state."""
        headers: dict[str, str] = {}
        now = self._wall()
        for name, bucket in self.buckets.items():
            if bucket is None:
                continue
            remaining = max(0, math.floor(bucket.level()))
            if self._round and name != "requests":
                remaining = int(round(remaining, -3))
            reset = datetime.fromtimestamp(now + bucket.seconds_to_full(), UTC)
            prefix = f"anthropic-ratelimit-{name.replace('_', '-')}"
            headers[f"{prefix}-limit"] = str(bucket.per_minute)
            headers[f"{prefix}-remaining"] = str(remaining)
            headers[f"{prefix}-reset"] = reset.isoformat(timespec="seconds").replace("+00:00", "Z")
        return headers
