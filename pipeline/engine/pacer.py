"""The pacer that keeps a run inside its tier's limits (``pipeline.core.limits``).

The server enforces each per-minute limit as a token bucket refilled continuously (see
``shared/reference/messages-api.md``). The ``Pacer`` mirrors those buckets on the client so
that requests leave at the rate the tier allows and not faster:

- Even pacing. Its buckets hold one second's worth, never a minute's: a server may enforce
  60/min as 1/s, so a minute's quota is never burst on a guess.
- Reservations. Each request reserves one request and its estimated input tokens before it
  is sent; ``settle`` reconciles with the ``usage`` the reply reports and charges the output
  tokens, which the server counts as they are produced. A request larger than a bucket waits
  for a full bucket and leaves it in debt: it runs, slowly, instead of hanging.
- Server feedback. ``observe`` reads ``anthropic-ratelimit-*-remaining``: when the server has
  less left than the pacer thought, the pacer slows down before the server refuses (reading
  what was sent since at the rate our estimates have proved to run over, so a conservative
  estimate does not throttle the run). When a server that keeps a minute's bucket reports
  more (a bucket left full by an idle minute), the pacer may use exactly that, minus what it
  has sent since, and never more; a server that shows only a second's worth is paced
  evenly, not raced. Limits the server states but the job did not are adopted.
- One cooldown. A 429 anywhere pauses every caller until its ``retry-after``.

The clock and the sleep are injected, so tests run on virtual time.
"""

from __future__ import annotations

import bisect
import math
import time
from array import array
from collections.abc import Mapping
from dataclasses import dataclass

import anyio

from pipeline.core.limits import MAX_PAUSE_S, Clock, Limits, Sleep, TokenBucket

RESOURCES = ("requests", "tokens", "input_tokens", "output_tokens")
# Each resource's anthropic-ratelimit-*-remaining and -limit header names, made once.
_HEADERS = tuple(
    (resource, f"{prefix}-remaining", f"{prefix}-limit")
    for resource in RESOURCES
    for prefix in (f"anthropic-ratelimit-{resource.replace('_', '-')}",)
)
# Token "remaining" headers are rounded to the nearest thousand: trust them 500 less.
_TOKEN_ROUNDING = 500
_HISTORY_SECONDS = 900.0
# Below this a wait is rounding error: sleeping it could not move a float clock.
_NEGLIGIBLE_WAIT = 1e-6


@dataclass(frozen=True)
class Reservation:
    """What one request took from the pacer, to be settled when it ends."""

    sent_at: float
    input_tokens: int


class _History:
    """Running totals of what the pacer sent and was charged, to tell what happened after a
    given moment: requests and input tokens reserved, output tokens charged.

    Kept in typed arrays (32 bytes an event, not the ~180 of a float and a tuple of three
    ints), and cut to the last ``_HISTORY_SECONDS`` once it holds 1.25 times that: at 100
    documents a second the lists held 370 bytes a document for the whole of a run shorter
    than half an hour."""

    def __init__(self) -> None:
        self._times = array("d")
        # totals just before each event: requests, input tokens, output tokens
        self._requests = array("q")
        self._tokens = array("q")
        self._output = array("q")
        self._totals = (0, 0, 0)

    def add(self, at: float, *, requests: int = 0, tokens: int = 0, output: int = 0) -> None:
        done_requests, done_tokens, done_output = self._totals
        self._times.append(at)
        self._requests.append(done_requests)
        self._tokens.append(done_tokens)
        self._output.append(done_output)
        self._totals = (done_requests + requests, done_tokens + tokens, done_output + output)
        if self._times[0] < at - 1.25 * _HISTORY_SECONDS:
            cut = bisect.bisect_left(self._times, at - _HISTORY_SECONDS)
            for column in (self._times, self._requests, self._tokens, self._output):
                del column[:cut]

    def since(self, moment: float) -> tuple[int, int, int]:
        """Requests, input tokens and output tokens recorded strictly after ``moment``."""
        index = bisect.bisect_right(self._times, moment)
        if index == len(self._times):
            return 0, 0, 0
        now_requests, now_tokens, now_output = self._totals
        return (
            now_requests - self._requests[index],
            now_tokens - self._tokens[index],
            now_output - self._output[index],
        )


class Pacer:
    def __init__(
        self,
        limits: Limits,
        *,
        clock: Clock = time.monotonic,
        sleep: Sleep = anyio.sleep,
        follow_server: bool = True,
    ) -> None:
        self._clock = clock
        self._sleep = sleep
        self._follow = follow_server
        self._lock = anyio.Lock(fast_acquire=True)  # free: taken without an event-loop trip
        self._cooldown_until = clock()
        self._history = _History()
        self._server_capacity: dict[str, float] = {}
        self.buckets: dict[str, TokenBucket] = {}
        for resource in RESOURCES:
            per_minute = limits.per_minute(resource)
            if per_minute is not None:
                self.buckets[resource] = self._bucket(per_minute)
        self.waited = 0.0
        self.cooldowns = 0
        self._estimated = 0  # input tokens reserved by estimate, over settled requests
        self._charged = 0  # and what the server charged for them

    def _bucket(self, per_minute: int) -> TokenBucket:
        return TokenBucket(per_minute, per_second=True, clock=self._clock)

    def _wait(self, input_tokens: int) -> float:
        wait = self._cooldown_until - self._clock()
        needs = {"requests": 1.0, "tokens": input_tokens, "input_tokens": input_tokens}
        for resource, bucket in self.buckets.items():
            # Output is charged after the fact: a new request only needs it out of debt.
            wait = max(wait, bucket.wait_for(needs.get(resource, 1e-9)))
        return wait

    def ready(self, input_tokens: int) -> bool:
        """Would ``acquire(input_tokens)`` return at once, with nobody waiting before it?"""
        return not self._lock.locked() and self._wait(input_tokens) <= _NEGLIGIBLE_WAIT

    async def acquire(self, input_tokens: int) -> Reservation:
        """Wait until the limits allow one more request of ``input_tokens``; reserve it.

        Callers are served first come, first served.
        """
        async with self._lock:
            while (wait := self._wait(input_tokens)) > _NEGLIGIBLE_WAIT:
                self.waited += wait
                await self._sleep(wait)
            for resource, amount in (
                ("requests", 1),
                ("tokens", input_tokens),
                ("input_tokens", input_tokens),
            ):
                if resource in self.buckets:
                    self.buckets[resource].take(amount)
            now = self._clock()
            self._history.add(now, requests=1, tokens=input_tokens)
            return Reservation(now, input_tokens)

    def settle(
        self, reservation: Reservation, *, input_tokens: int | None, output_tokens: int
    ) -> None:
        """Reconcile a reservation with what the server charged.

        ``input_tokens`` is what counts against the input budget (``input_tokens`` plus
        ``cache_creation_input_tokens``), or None when the request failed before a reply:
        then the reserved input goes back.
        """
        actual = 0 if input_tokens is None else input_tokens
        if input_tokens is not None:
            self._estimated += reservation.input_tokens
            self._charged += input_tokens
        for resource in ("tokens", "input_tokens"):
            if resource in self.buckets:
                self.buckets[resource].refund(reservation.input_tokens - actual)
        for resource in ("tokens", "output_tokens"):
            if resource in self.buckets and output_tokens:
                self.buckets[resource].take(output_tokens)
        if output_tokens:
            self._history.add(self._clock(), output=output_tokens)

    def cooldown(self, seconds: float) -> None:
        """Pause every caller for ``seconds`` (a 429's retry-after), at most ``MAX_PAUSE_S``;
        a wait that is not a finite number is no pause."""
        if not math.isfinite(seconds) or seconds <= 0:
            return
        self.cooldowns += 1
        seconds = min(seconds, MAX_PAUSE_S)
        self._cooldown_until = max(self._cooldown_until, self._clock() + seconds)

    def observe(self, headers: Mapping[str, str], reservation: Reservation) -> None:
        """Take in the server's ``anthropic-ratelimit-*`` headers from the reply to the
        request that made ``reservation``.

        The server's figure is taken as of the moment that request was sent: since then its
        bucket has refilled (never past the largest it has shown itself to be), and the
        requests sent after it have drawn on it.
        """
        sent_at = reservation.sent_at
        sent_requests, sent_tokens, produced = self._history.since(sent_at)
        # Our input estimates run over what the server charges: scale what was sent since
        # by how far they ran over so far, when deciding to slow down.
        ratio = min(1.0, self._charged / self._estimated) if self._estimated else 1.0
        elapsed = max(0.0, self._clock() - sent_at)
        for resource, remaining_header, limit_header in _HEADERS:
            remaining = _number(headers.get(remaining_header))
            if remaining is None:
                continue
            bucket = self.buckets.get(resource)
            if bucket is None:
                limit = _number(headers.get(limit_header))
                if limit is None or limit < 1:
                    continue
                bucket = self.buckets[resource] = self._bucket(int(limit))
            # Since then: what was sent drew requests and input; replies that ended were
            # charged their output (the combined budget counts both).
            own, since, scale, charged = {
                "requests": (1, sent_requests, 1.0, 0),
                "input_tokens": (reservation.input_tokens, sent_tokens, ratio, 0),
                "tokens": (reservation.input_tokens, sent_tokens, ratio, produced),
                "output_tokens": (0, 0, 1.0, produced),
            }[resource]
            self._adjust(
                resource,
                bucket,
                remaining + bucket.rate * elapsed,
                remaining + own,
                _SinceSent(own, since, scale, charged),
            )

    def _adjust(
        self,
        resource: str,
        bucket: TokenBucket,
        refilled: float,
        shown: float,
        sent: _SinceSent,
    ) -> None:
        """Set ``bucket`` from the server's figure: ``refilled`` is what it reported left,
        refilled since the request was sent; ``shown`` what its bucket held before it."""
        # What the server's bucket can hold, as far as it has shown: a server that
        # enforces per second never reports more than a second's worth.
        seen = self._server_capacity[resource] = max(
            self._server_capacity.get(resource, 0.0), shown
        )
        current = bucket.level()
        # Slow down only when the server has less than we think even if its bucket
        # never hit its cap meanwhile (the optimistic reading): a cap reached while
        # requests were in flight would otherwise look like a shortfall and throttle.
        lowest = refilled - sent.charged - sent.since * sent.scale
        allowed = min(refilled, seen) - sent.charged - sent.since
        if lowest < current:
            bucket.set_level(lowest)
        elif self._follow and seen > 2 * bucket.capacity:
            # The server keeps more than our pacing does (a minute's bucket, not a
            # second's): use what it says it has. A server that enforces per second
            # shows no more than a second's worth: it is paced evenly, never raced.
            # Replies can overtake each other on the way, so a figure may miss a request
            # or two sent just before; and token figures are rounded. Raise only past that.
            margin = 2 * sent.own + (0 if resource == "requests" else _TOKEN_ROUNDING)
            trusted = allowed - margin
            if trusted > current:
                bucket.set_level(min(trusted, float(bucket.per_minute)))


@dataclass(frozen=True)
class _SinceSent:
    """What drew on one of the server's buckets since a request was sent: the request's own
    share, what was sent after it (read at ``scale``, how far our estimates ran over), and
    the output charged meanwhile."""

    own: int
    since: int
    scale: float
    charged: int


def _number(text: str | None) -> float | None:
    if text is None:
        return None
    try:
        return float(text)
    except ValueError:
        return None
