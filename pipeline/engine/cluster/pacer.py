"""The ``Pacer``'s methods in a process that makes calls, with capacity leased from the
cluster's limiter.

``acquire`` waits for a reservation as the ``Pacer``'s does, but the reservation comes from the
limiter: every request waiting here at once is asked for in one round trip (a lease), so
calls do not each pay one. ``observe``, ``settle`` and ``cooldown`` are queued and reported
in batches, in order, by a second task: a report never waits behind a lease (a lease may be
waiting for the very concurrency slot a report frees). While this process holds reservations
it reports at least every ``heartbeat_s``, so the limiter knows it is alive. While requests
keep waiting, leases are ``LEASE_INTERVAL_S`` apart: at a high rate one lease carries all that
refilled since the last, and the round trips stay a few a second whatever the rate.

When the limiter is gone (``LimiterLost``), every waiting and later ``acquire`` raises it:
requests already granted finish, and no other is sent.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import Protocol

import anyio

from pipeline.core.errors import LimiterLost
from pipeline.core.limits import Sleep
from pipeline.engine.cluster.desk import (
    MAX_LEASE,
    Cooldown,
    Event,
    Lease,
    Observed,
    Settled,
    rate_limit_headers,
)
from pipeline.engine.pacer import Reservation

# Between two leases while requests are waiting: what refilled meanwhile comes in one round
# trip. So a process asks at most 20 times a second whatever the tier's rate (at 3,000
# requests a minute, about 2.5 a lease), and no request waits more than this for its turn.
LEASE_INTERVAL_S = 0.05
# How long, at the end, the last report may take before it is given up.
FINAL_REPORT_S = 10.0


class LimiterLink(Protocol):
    """The way to the limiter: Ray's actor handle (``limiter.RayLink``), or a desk in the
    same process in tests. Raises ``LimiterLost`` when the limiter is gone. ``heartbeat_s``:
    how often a holder must report while it holds reservations (under the limiter's TTL)."""

    @property
    def heartbeat_s(self) -> float: ...

    async def lease(self, holder: str, sizes: Sequence[int]) -> Lease: ...

    async def report(self, holder: str, events: Sequence[Event]) -> None: ...


class _Waiter:
    def __init__(self, input_tokens: int) -> None:
        self.input_tokens = input_tokens
        self.done = anyio.Event()
        self.reservation: Reservation | None = None
        self.error: LimiterLost | None = None


class ClusterPacer:
    def __init__(
        self,
        link: LimiterLink,
        *,
        holder: str | None = None,
        lease_interval_s: float = LEASE_INTERVAL_S,
        sleep: Sleep = anyio.sleep,
    ) -> None:
        self.link = link
        self.holder = holder or f"holder-{uuid.uuid4().hex[:12]}"
        self._heartbeat_s = link.heartbeat_s
        self._interval = lease_interval_s
        self._sleep = sleep
        self._waiters: list[_Waiter] = []
        self._events: list[Event] = []
        self._held = 0  # reservations handed out and not settled yet
        self._lost: LimiterLost | None = None
        self._lease_wake = anyio.Event()
        self._report_wake = anyio.Event()
        self.leases = 0  # round trips for reservations, for tests and the benchmark
        self.cooldowns = 0

    @asynccontextmanager
    async def running(self) -> AsyncIterator[ClusterPacer]:
        """Lease and report in the background while the block runs; report the rest at
        its end."""
        try:
            async with anyio.create_task_group() as tasks:
                tasks.start_soon(self._lease_loop)
                tasks.start_soon(self._report_loop)
                try:
                    yield self
                finally:
                    tasks.cancel_scope.cancel()
        finally:
            # Nothing to give back to when the limiter is gone.
            with (
                anyio.CancelScope(shield=True),
                anyio.move_on_after(FINAL_REPORT_S),
                contextlib.suppress(LimiterLost),
            ):
                await self._report()

    async def acquire(self, input_tokens: int) -> Reservation:
        if self._lost is not None:
            raise self._lost
        waiter = _Waiter(input_tokens)
        self._waiters.append(waiter)
        self._lease_wake.set()
        try:
            await waiter.done.wait()
        except BaseException:
            if waiter in self._waiters:
                self._waiters.remove(waiter)
            if waiter.reservation is not None:  # granted as it was cancelled: give it back
                self.settle(waiter.reservation, input_tokens=None, output_tokens=0)
            raise
        if waiter.error is not None:
            raise waiter.error
        assert waiter.reservation is not None
        return waiter.reservation

    def settle(
        self, reservation: Reservation, *, input_tokens: int | None, output_tokens: int
    ) -> None:
        self._held -= 1
        self._queue(Settled(reservation, input_tokens, output_tokens))

    def observe(self, headers: Mapping[str, str], reservation: Reservation) -> None:
        self._queue(Observed(reservation, rate_limit_headers(headers)))

    def cooldown(self, seconds: float) -> None:
        self.cooldowns += 1
        self._queue(Cooldown(seconds))

    def _queue(self, event: Event) -> None:
        if self._lost is None:
            self._events.append(event)
            self._report_wake.set()

    def _lose(self, error: LimiterLost) -> None:
        self._lost = error
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            waiter.error = error
            waiter.done.set()

    async def _lease_loop(self) -> None:
        while self._lost is None:
            await self._lease_wake.wait()
            self._lease_wake = anyio.Event()
            while self._waiters and self._lost is None:
                sizes = [waiter.input_tokens for waiter in self._waiters[:MAX_LEASE]]
                try:
                    lease = await self.link.lease(self.holder, sizes)
                except LimiterLost as exc:
                    self._lose(exc)
                    return
                self.leases += 1
                self._hand_out(lease.reservations)
                if self._waiters and self._interval:
                    await self._sleep(self._interval)  # what refills comes in one lease

    def _hand_out(self, reservations: Sequence[Reservation]) -> None:
        for reservation in reservations:
            self._held += 1
            if not self._waiters:  # its waiter was cancelled meanwhile: give it back
                self.settle(reservation, input_tokens=None, output_tokens=0)
                continue
            waiter = self._waiters.pop(0)
            waiter.reservation = reservation
            waiter.done.set()

    async def _report_loop(self) -> None:
        while self._lost is None:
            with anyio.move_on_after(self._heartbeat_s):
                await self._report_wake.wait()
            self._report_wake = anyio.Event()
            if self._events or self._held > 0:
                try:
                    await self._report()
                except LimiterLost as exc:
                    self._lose(exc)

    async def _report(self) -> None:
        if self._lost is not None:
            return
        events, self._events = self._events, []
        await self.link.report(self.holder, events)
