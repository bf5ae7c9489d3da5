"""The cluster limiter's state: the tier's pacer and the cluster-wide concurrency, leased out.

A lease is a batch of reservations, each made by the project's ``Pacer`` exactly as one
machine makes them (even pacing, a second's worth at most, the shared cooldown). The first
reservation of a lease waits for its turn; the others are added only while the pacer and the
concurrency allow them at once, and while nobody else is waiting: a lease never holds capacity
back from another caller, and never takes more than a bucket holds.

Each reservation holds one concurrency slot of the tier until its holder reports it settled.
A holder that falls silent for ``holder_ttl_s`` (its process or node died with requests in
flight) has its slots taken back; a live holder reports at least every few seconds while it
holds any (``ClusterPacer``'s heartbeat), so that never happens to one that is only slow.

No Ray here: the actor (``limiter``) wraps this, and tests drive it on virtual time.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import anyio

from pipeline.core.limits import Clock, Limits, Sleep
from pipeline.engine.pacer import Pacer, Reservation

log = logging.getLogger("pipeline.cluster")

# The most reservations one lease carries: a lease never holds more than a bucket does
# anyway; this bounds one holder's share when the buckets are large.
MAX_LEASE = 32
# A holder silent this long with slots held is taken for dead, its slots freed.
HOLDER_TTL_S = 60.0


@dataclass(frozen=True)
class Lease:
    """Reservations granted in one round trip, in the order they were asked for."""

    reservations: tuple[Reservation, ...]


@dataclass(frozen=True)
class Observed:
    """A reply's ``anthropic-ratelimit-*`` headers, for the request of ``reservation``."""

    reservation: Reservation
    headers: tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class Settled:
    """A request ended: what the server charged (``input_tokens`` None: no reply)."""

    reservation: Reservation
    input_tokens: int | None
    output_tokens: int


@dataclass(frozen=True)
class Cooldown:
    """A 429 said to wait: every caller in the cluster pauses."""

    seconds: float


Event = Observed | Settled | Cooldown


@dataclass
class _Holder:
    slots: int  # reservations granted and not yet settled
    seen: float  # when it was last heard from
    leasing: int = 0  # leases it is waiting for: alive, however long the wait


@dataclass(frozen=True)
class DeskStats:
    """What the desk has done, for tests and the benchmark."""

    leases: int
    granted: int
    in_flight: int
    peak_in_flight: int
    holders: int
    peak_holders: int
    reaped: int
    cooldowns: int


class LeaseDesk:
    def __init__(
        self,
        limits: Limits,
        *,
        clock: Clock = time.monotonic,
        sleep: Sleep = anyio.sleep,
        holder_ttl_s: float = HOLDER_TTL_S,
    ) -> None:
        self.limits = limits
        self.pacer = Pacer(limits, clock=clock, sleep=sleep)
        self._clock = clock
        self._ttl = holder_ttl_s
        self._cap = limits.max_concurrency
        self._holders: dict[str, _Holder] = {}
        self._freed = anyio.Event()
        self._in_flight = 0
        self._waiting = 0
        self._counts = {"leases": 0, "granted": 0, "peak": 0, "holders": 0, "reaped": 0}

    def _free(self) -> bool:
        return self._cap is None or self._in_flight < self._cap

    def _holder(self, name: str) -> _Holder:
        holder = self._holders.setdefault(name, _Holder(0, self._clock()))
        holder.seen = self._clock()
        self._counts["holders"] = max(self._counts["holders"], len(self._holders))
        return holder

    def _claim(self, holder: _Holder) -> None:
        holder.slots += 1
        self._in_flight += 1
        self._counts["peak"] = max(self._counts["peak"], self._in_flight)

    def _release(self, holder: _Holder, slots: int) -> None:
        slots = min(slots, holder.slots)
        holder.slots -= slots
        self._in_flight -= slots
        if slots:
            self._freed.set()
            self._freed = anyio.Event()

    def _forget_if_idle(self, name: str, holder: _Holder) -> None:
        if not holder.slots and not holder.leasing:
            del self._holders[name]

    async def _first_slot(self, holder: _Holder, *, poll_s: float) -> None:
        """Wait for a free concurrency slot and claim it for ``holder``."""
        self._waiting += 1
        try:
            while not self._free():
                self.reap()
                if self._free():
                    break
                with anyio.move_on_after(poll_s):
                    await self._freed.wait()
        finally:
            self._waiting -= 1
        self._claim(holder)

    async def lease(self, name: str, sizes: Sequence[int], *, poll_s: float = 1.0) -> Lease:
        """Reserve for the requests of ``sizes`` (estimated input tokens each): the first
        as soon as the limits allow, the others only if they allow them now as well."""
        sizes = list(sizes)[:MAX_LEASE]
        if not sizes:
            return Lease(())
        holder = self._holder(name)
        holder.leasing += 1
        try:
            await self._first_slot(holder, poll_s=poll_s)
            try:
                granted = [await self.pacer.acquire(sizes[0])]
            except BaseException:
                self._release(holder, 1)
                raise
            for size in sizes[1:]:
                if self._waiting or not self._free() or not self.pacer.ready(size):
                    break
                self._claim(holder)
                granted.append(await self.pacer.acquire(size))
        finally:
            holder.leasing -= 1
            holder.seen = self._clock()
            self._forget_if_idle(name, holder)
        self._counts["leases"] += 1
        self._counts["granted"] += len(granted)
        return Lease(tuple(granted))

    def report(self, name: str, events: Sequence[Event]) -> None:
        """Apply what a holder's requests reported, in the order they reported it."""
        holder = self._holder(name)
        for event in events:
            if isinstance(event, Observed):
                self.pacer.observe(dict(event.headers), event.reservation)
            elif isinstance(event, Settled):
                self.pacer.settle(
                    event.reservation,
                    input_tokens=event.input_tokens,
                    output_tokens=event.output_tokens,
                )
                self._release(holder, 1)
            else:
                self.pacer.cooldown(event.seconds)
        self._forget_if_idle(name, holder)

    def reap(self) -> int:
        """Free the slots of holders silent for longer than the TTL; how many were freed."""
        cutoff = self._clock() - self._ttl
        freed = 0
        for name, holder in list(self._holders.items()):
            if holder.seen < cutoff and not holder.leasing:
                log.warning(
                    "cluster limiter: %s silent for %.0f s with %d requests in flight; "
                    "taken for dead, its concurrency freed",
                    name,
                    self._ttl,
                    holder.slots,
                )
                freed += holder.slots
                self._release(holder, holder.slots)
                del self._holders[name]
        self._counts["reaped"] += freed
        return freed

    def stats(self) -> DeskStats:
        return DeskStats(
            leases=self._counts["leases"],
            granted=self._counts["granted"],
            in_flight=self._in_flight,
            peak_in_flight=self._counts["peak"],
            holders=len(self._holders),
            peak_holders=self._counts["holders"],
            reaped=self._counts["reaped"],
            cooldowns=self.pacer.cooldowns,
        )


def rate_limit_headers(headers: Mapping[str, str]) -> tuple[tuple[str, str], ...]:
    """The headers the pacer reads, and no others, to cross to the limiter."""
    return tuple(
        (name.lower(), value)
        for name, value in headers.items()
        if name.lower().startswith("anthropic-ratelimit-")
    )
