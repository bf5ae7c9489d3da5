"""The cluster limiter's desk and a caller's ``ClusterPacer``, in one process on virtual time:
leases in batches within the tier, concurrency held until settled, one cooldown for every
holder, a silent holder's slots taken back, and a lost limiter stopping every caller."""

from __future__ import annotations

from collections.abc import Sequence

import anyio
import anyio.lowlevel
import pytest

from pipeline.core.errors import LimiterLost
from pipeline.core.limits import Limits, Sleep
from pipeline.engine.cluster.desk import Cooldown, Event, Lease, LeaseDesk, Observed, Settled
from pipeline.engine.cluster.pacer import ClusterPacer
from pipeline.engine.pacer import Reservation
from tests.conftest import FakeClock


def sleeper(clock: FakeClock) -> Sleep:
    async def sleep(seconds: float) -> None:
        clock.advance(seconds)
        await anyio.lowlevel.checkpoint()

    return sleep


def desk_on(clock: FakeClock, limits: Limits, **kwargs: float) -> LeaseDesk:
    return LeaseDesk(limits, clock=clock, sleep=sleeper(clock), **kwargs)


class DeskLink:
    """The limiter in this process: what the Ray actor does, without Ray."""

    heartbeat_s = 10.0

    def __init__(self, desk: LeaseDesk, *, fail_after: int | None = None) -> None:
        self.desk = desk
        self.calls = 0
        self.fail_after = fail_after

    def _count(self) -> None:
        self.calls += 1
        if self.fail_after is not None and self.calls > self.fail_after:
            raise LimiterLost("The cluster's rate limiter 'test' is gone")

    async def lease(self, holder: str, sizes: Sequence[int]) -> Lease:
        self._count()
        return await self.desk.lease(holder, sizes)

    async def report(self, holder: str, events: Sequence[Event]) -> None:
        self._count()
        self.desk.report(holder, events)


def settled(reservation: Reservation) -> Settled:
    return Settled(reservation, input_tokens=reservation.input_tokens, output_tokens=10)


@pytest.mark.anyio
async def test_a_lease_carries_what_the_tier_allows_now_and_no_more(fake_clock: FakeClock) -> None:
    desk = desk_on(fake_clock, Limits(requests_per_minute=300, max_concurrency=50))  # 5 a second
    lease = await desk.lease("a", [100] * 20)
    assert len(lease.reservations) == 5  # a second's bucket: never a minute's burst
    assert fake_clock.now == 1000.0
    second = await desk.lease("b", [100] * 20)
    assert len(second.reservations) == 1  # waited for the next one, then the bucket was dry
    assert fake_clock.now == pytest.approx(1000.2)


@pytest.mark.anyio
async def test_concurrency_is_held_until_settled_across_holders(fake_clock: FakeClock) -> None:
    desk = desk_on(fake_clock, Limits(requests_per_minute=6_000, max_concurrency=3))
    first = await desk.lease("a", [10] * 8)
    assert len(first.reservations) == 3
    got: list[Lease] = []
    async with anyio.create_task_group() as tasks:

        async def wait_for_b() -> None:
            got.append(await desk.lease("b", [10, 10]))

        tasks.start_soon(wait_for_b)
        await anyio.wait_all_tasks_blocked()
        assert got == []  # every slot of the tier is held by "a"
        desk.report("a", [settled(first.reservations[0])])
    assert len(got[0].reservations) == 1  # one slot was freed: one request, not two
    assert desk.stats().in_flight == 3
    assert desk.stats().peak_in_flight == 3


@pytest.mark.anyio
async def test_one_holders_429_pauses_every_holder(fake_clock: FakeClock) -> None:
    desk = desk_on(fake_clock, Limits(requests_per_minute=6_000))
    lease = await desk.lease("a", [10])
    desk.report("a", [settled(lease.reservations[0]), Cooldown(7.0)])
    start = fake_clock.now
    await desk.lease("b", [10])
    assert fake_clock.now - start == pytest.approx(7.0)
    assert desk.stats().cooldowns == 1


@pytest.mark.anyio
async def test_server_headers_reported_by_a_holder_slow_the_others(fake_clock: FakeClock) -> None:
    desk = desk_on(fake_clock, Limits(requests_per_minute=600))  # 10 a second
    lease = await desk.lease("a", [10])
    remaining = (("anthropic-ratelimit-requests-remaining", "0"),)
    desk.report("a", [Observed(lease.reservations[0], remaining), settled(lease.reservations[0])])
    start = fake_clock.now
    second = await desk.lease("b", [10] * 5)
    # The server said its bucket is empty: the next request waits for a refill of one.
    assert fake_clock.now - start == pytest.approx(0.1)
    assert len(second.reservations) == 1


@pytest.mark.anyio
async def test_a_silent_holders_slots_are_taken_back(fake_clock: FakeClock) -> None:
    desk = desk_on(fake_clock, Limits(max_concurrency=2), holder_ttl_s=60.0)
    await desk.lease("dead", [10, 10])
    fake_clock.advance(30)
    assert desk.reap() == 0  # silent, but not for long enough
    fake_clock.advance(31)
    assert desk.reap() == 2
    with anyio.fail_after(1):  # the slots are free again: no wait
        lease = await desk.lease("alive", [10, 10])
    assert len(lease.reservations) == 2
    assert desk.stats().reaped == 2


@pytest.mark.anyio
async def test_a_caller_asks_for_all_its_waiting_requests_in_few_round_trips(
    fake_clock: FakeClock,
) -> None:
    desk = desk_on(fake_clock, Limits(requests_per_minute=60_000, max_concurrency=40))
    link = DeskLink(desk)
    pacer = ClusterPacer(link)
    async with pacer.running(), anyio.create_task_group() as tasks:
        for _ in range(30):

            async def one() -> None:
                reservation = await pacer.acquire(50)
                pacer.settle(reservation, input_tokens=40, output_tokens=20)

            tasks.start_soon(one)
    assert desk.stats().granted == 30
    assert pacer.leases <= 3  # not one round trip a request
    assert desk.stats().in_flight == 0  # every settle reached the desk


@pytest.mark.anyio
async def test_at_a_high_rate_a_lease_carries_what_refilled_since_the_last(
    fake_clock: FakeClock,
) -> None:
    desk = desk_on(fake_clock, Limits(requests_per_minute=6_000))  # 100 a second
    pacer = ClusterPacer(DeskLink(desk), sleep=sleeper(fake_clock))
    start = fake_clock.now
    async with pacer.running(), anyio.create_task_group() as tasks:
        for _ in range(300):

            async def one() -> None:
                reservation = await pacer.acquire(50)
                pacer.settle(reservation, input_tokens=50, output_tokens=0)

            tasks.start_soon(one)
    # A second's bucket (100) first, 32 at a time; then leases 50 ms apart carry 5 each.
    assert pacer.leases <= 50
    assert fake_clock.now - start == pytest.approx(2.0, abs=0.06)  # still the tier's rate


@pytest.mark.anyio
async def test_a_lost_limiter_stops_every_caller_and_sends_nothing_more(
    fake_clock: FakeClock,
) -> None:
    desk = desk_on(fake_clock, Limits(requests_per_minute=60, max_concurrency=5))  # 1 a second
    link = DeskLink(desk, fail_after=0)
    pacer = ClusterPacer(link)
    errors: list[LimiterLost] = []
    async with pacer.running(), anyio.create_task_group() as tasks:
        for _ in range(4):

            async def one() -> None:
                try:
                    await pacer.acquire(10)
                except LimiterLost as exc:
                    errors.append(exc)

            tasks.start_soon(one)
    assert len(errors) == 4
    assert "rate limiter" in str(errors[0])
    with pytest.raises(LimiterLost):
        await pacer.acquire(10)  # later callers too: never unlimited
    assert desk.stats().granted == 0
