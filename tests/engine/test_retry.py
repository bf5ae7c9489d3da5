"""The retry loop (``pipeline.engine.retry.call_with_retries``) on virtual time: how many
attempts, which waits, and which error comes out."""

from __future__ import annotations

import random

import pytest

from pipeline.core import errors
from pipeline.engine.retry import RetryPolicy, call_with_retries
from tests.conftest import FakeClock


class Script:
    """An attempt that raises the given errors in turn, then returns "done"."""

    def __init__(self, *failures: errors.PipelineError) -> None:
        self.failures = list(failures)
        self.calls = 0

    async def __call__(self) -> str:
        self.calls += 1
        if self.failures:
            raise self.failures.pop(0)
        return "done"


async def run(
    attempt: Script, policy: RetryPolicy, clock: FakeClock, waits: list[float], seed: int = 7
) -> str:
    async def sleep(seconds: float) -> None:
        waits.append(seconds)
        clock.advance(seconds)

    return await call_with_retries(
        attempt, policy, clock=clock, sleep=sleep, rng=random.Random(seed)
    )


@pytest.mark.anyio
async def test_backoff_doubles_with_jitter_drawn_in_order(fake_clock: FakeClock) -> None:
    policy = RetryPolicy(initial_wait_s=1.0, max_wait_s=3.0)
    attempt = Script(*(errors.ServerError(f"boom {n}", status=500) for n in range(4)))
    waits: list[float] = []
    assert await run(attempt, policy, fake_clock, waits) == "done"
    draws = random.Random(7)
    expected = [policy.wait_s(n, None, draws) for n in (1, 2, 3, 4)]
    assert waits == expected
    ceilings = (1.0, 2.0, 3.0, 3.0)  # initial_wait_s doubling, held at max_wait_s
    assert all(c / 2 <= w <= c for w, c in zip(waits, ceilings, strict=True))
    assert attempt.calls == 5


@pytest.mark.anyio
async def test_a_servers_retry_after_is_the_wait(fake_clock: FakeClock) -> None:
    attempt = Script(errors.RateLimited("slow down", status=429, retry_after=7.0))
    waits: list[float] = []
    assert await run(attempt, RetryPolicy(), fake_clock, waits) == "done"
    assert waits == [7.0]


@pytest.mark.anyio
async def test_after_max_attempts_the_last_error_comes_out(fake_clock: FakeClock) -> None:
    last = errors.Overloaded("third", status=529)
    attempt = Script(errors.ServerError("first"), errors.ServerError("second"), last)
    waits: list[float] = []
    with pytest.raises(errors.Overloaded) as caught:
        await run(attempt, RetryPolicy(max_attempts=3), fake_clock, waits)
    assert caught.value is last
    assert attempt.calls == 3
    assert len(waits) == 2  # no wait after the last attempt


@pytest.mark.anyio
async def test_no_wait_runs_past_the_elapsed_budget_and_none_starts_after_it(
    fake_clock: FakeClock,
) -> None:
    policy = RetryPolicy(max_elapsed_s=10.0)
    slow = [errors.RateLimited("wait", status=429, retry_after=6.0) for _ in range(5)]
    attempt = Script(*slow)
    waits: list[float] = []
    with pytest.raises(errors.RateLimited):
        await run(attempt, policy, fake_clock, waits)
    assert waits == [6.0, 4.0]  # the second wait is cut to what is left of the 10 s
    assert attempt.calls == 3  # the third attempt starts at 10 s: the budget is spent


@pytest.mark.anyio
@pytest.mark.parametrize(
    "error",
    [
        errors.InvalidRequest("bad", status=400),
        errors.AuthenticationFailed("key", status=401, should_retry=True),
        errors.ServerError("poison", status=500, should_retry=False),
    ],
)
async def test_what_cannot_pass_is_raised_at_once(
    fake_clock: FakeClock, error: errors.PipelineError
) -> None:
    attempt = Script(error)
    waits: list[float] = []
    with pytest.raises(type(error)) as caught:
        await run(attempt, RetryPolicy(), fake_clock, waits)
    assert caught.value is error
    assert attempt.calls == 1
    assert waits == []


@pytest.mark.anyio
async def test_an_error_that_is_not_ours_is_never_retried(fake_clock: FakeClock) -> None:
    async def broken() -> str:
        raise KeyError("a bug")

    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)

    with pytest.raises(KeyError):
        await call_with_retries(
            broken, RetryPolicy(), clock=fake_clock, sleep=sleep, rng=random.Random()
        )
    assert waits == []
