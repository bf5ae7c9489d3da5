"""The pacer on virtual time: even pacing, reservations, server feedback, one cooldown."""

from __future__ import annotations

import anyio
import pytest

from pipeline.core.limits import Limits
from pipeline.engine.pacer import Pacer
from tests.conftest import FakeClock


def pacer_on(clock: FakeClock, limits: Limits, **kwargs: bool) -> Pacer:
    async def sleep(seconds: float) -> None:
        clock.advance(seconds)  # the pacer sleeps while holding its lock: one sleeper at a time

    return Pacer(limits, clock=clock, sleep=sleep, **kwargs)


@pytest.mark.anyio
async def test_requests_leave_evenly_never_in_a_burst(fake_clock: FakeClock) -> None:
    pacer = pacer_on(fake_clock, Limits(requests_per_minute=60))
    start = fake_clock()
    times = []
    for _ in range(10):
        await pacer.acquire(0)
        times.append(fake_clock() - start)
    # One second's worth up front (one request), then one a second: not a minute's burst.
    assert times == pytest.approx([0, 1, 2, 3, 4, 5, 6, 7, 8, 9])


@pytest.mark.anyio
async def test_token_budget_paces_by_input_size(fake_clock: FakeClock) -> None:
    pacer = pacer_on(fake_clock, Limits(tokens_per_minute=60_000))  # 1,000 a second
    start = fake_clock()
    for _ in range(5):
        await pacer.acquire(2_000)
    # Each request needs a full bucket (1,000) and leaves 1,000 of debt: one every 2 s.
    assert fake_clock() - start == pytest.approx(8.0)


@pytest.mark.anyio
async def test_request_larger_than_a_minutes_budget_still_runs(fake_clock: FakeClock) -> None:
    pacer = pacer_on(fake_clock, Limits(input_tokens_per_minute=6_000))
    with anyio.fail_after(1):  # on virtual time this returns at once, or never
        await pacer.acquire(50_000)
    start = fake_clock()
    await pacer.acquire(10)
    assert fake_clock() - start == pytest.approx((49_900 + 10) / 100)  # the debt is paid off


@pytest.mark.anyio
async def test_settle_gives_back_an_overestimate_and_charges_output(fake_clock: FakeClock) -> None:
    pacer = pacer_on(fake_clock, Limits(tokens_per_minute=60_000))
    reservation = await pacer.acquire(900)
    assert pacer.buckets["tokens"].level() == pytest.approx(100)
    pacer.settle(reservation, input_tokens=600, output_tokens=250)
    assert pacer.buckets["tokens"].level() == pytest.approx(100 + 300 - 250)
    failed = await pacer.acquire(100)
    pacer.settle(failed, input_tokens=None, output_tokens=0)  # no reply: input comes back
    assert pacer.buckets["tokens"].level() == pytest.approx(150)


@pytest.mark.anyio
async def test_output_debt_holds_the_next_request(fake_clock: FakeClock) -> None:
    pacer = pacer_on(fake_clock, Limits(output_tokens_per_minute=6_000))  # 100 a second
    reservation = await pacer.acquire(10)
    pacer.settle(reservation, input_tokens=10, output_tokens=400)
    start = fake_clock()
    await pacer.acquire(10)
    assert fake_clock() - start == pytest.approx(3.0)  # from -300 back to just above zero


@pytest.mark.anyio
async def test_cooldown_pauses_every_caller(fake_clock: FakeClock) -> None:
    pacer = pacer_on(fake_clock, Limits())
    start = fake_clock()
    pacer.cooldown(7)
    returned: list[float] = []

    async def caller() -> None:
        await pacer.acquire(0)
        returned.append(fake_clock() - start)

    async with anyio.create_task_group() as group:
        for _ in range(3):
            group.start_soon(caller)
    assert returned == [7, 7, 7]
    assert pacer.cooldowns == 1


@pytest.mark.anyio
async def test_server_with_less_left_slows_the_pacer(fake_clock: FakeClock) -> None:
    pacer = pacer_on(fake_clock, Limits(requests_per_minute=600))  # 10 a second
    reservation = await pacer.acquire(0)
    pacer.observe({"anthropic-ratelimit-requests-remaining": "0"}, reservation)
    start = fake_clock()
    await pacer.acquire(0)
    assert fake_clock() - start == pytest.approx(0.1)


@pytest.mark.anyio
async def test_server_reporting_spare_capacity_lets_the_pacer_use_exactly_that(
    fake_clock: FakeClock,
) -> None:
    pacer = pacer_on(fake_clock, Limits(requests_per_minute=60))
    first = await pacer.acquire(0)
    # The server's minute bucket is nearly full: 40 left after this request.
    pacer.observe({"anthropic-ratelimit-requests-remaining": "40"}, first)
    start = fake_clock()
    for _ in range(38):  # 40, less a margin of two for replies that overtake each other
        await pacer.acquire(0)
    assert fake_clock() == start
    await pacer.acquire(0)
    assert fake_clock() - start == pytest.approx(1.0)  # then back to the steady rate


@pytest.mark.anyio
async def test_spare_capacity_is_ignored_when_told_not_to_follow(fake_clock: FakeClock) -> None:
    pacer = pacer_on(fake_clock, Limits(requests_per_minute=60), follow_server=False)
    first = await pacer.acquire(0)
    pacer.observe({"anthropic-ratelimit-requests-remaining": "40"}, first)
    start = fake_clock()
    await pacer.acquire(0)
    assert fake_clock() - start == pytest.approx(1.0)


@pytest.mark.anyio
async def test_a_limit_the_server_states_is_adopted(fake_clock: FakeClock) -> None:
    pacer = pacer_on(fake_clock, Limits())
    first = await pacer.acquire(0)
    pacer.observe(
        {
            "anthropic-ratelimit-requests-limit": "120",
            "anthropic-ratelimit-requests-remaining": "0",
        },
        first,
    )
    assert pacer.buckets["requests"].per_minute == 120
    start = fake_clock()
    await pacer.acquire(0)
    assert fake_clock() - start == pytest.approx(0.5)


@pytest.mark.anyio
async def test_a_server_that_keeps_only_a_seconds_worth_is_not_raced(
    fake_clock: FakeClock,
) -> None:
    pacer = pacer_on(fake_clock, Limits(requests_per_minute=600))  # ours: 10 a second
    sent = [await pacer.acquire(0) for _ in range(10)]  # our second's worth, used up
    # A per-second server says 9 left: its whole bucket is a second's worth too, so this
    # is no spare minute to spend; we keep pacing.
    pacer.observe({"anthropic-ratelimit-requests-remaining": "9"}, sent[-1])
    start = fake_clock()
    for _ in range(7):
        await pacer.acquire(0)
    assert fake_clock() - start == pytest.approx(0.7)


@pytest.mark.anyio
async def test_an_estimate_that_runs_over_does_not_throttle(fake_clock: FakeClock) -> None:
    pacer = pacer_on(fake_clock, Limits(tokens_per_minute=60_000))  # 1,000 a second
    first = await pacer.acquire(500)
    fake_clock.advance(0.1)
    second = await pacer.acquire(500)
    for reservation in (first, second):  # the server charged 400 where we reserved 500
        pacer.settle(reservation, input_tokens=400, output_tokens=0)
    assert pacer.buckets["tokens"].level() == pytest.approx(300)
    # Asked as the first was admitted, the server had 650 left; since then it refilled 100
    # and the second drew what it really holds (our estimates run 25% over): 350 left,
    # more than our 300, so no slowing down. Counting our estimate (500) would say 250.
    pacer.observe({"anthropic-ratelimit-tokens-remaining": "650"}, first)
    assert pacer.buckets["tokens"].level() == pytest.approx(300)
