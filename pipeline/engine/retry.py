"""Which failures are retried, how long to wait, and when to give up.

Defaults suit work nobody is watching: far more patient than the SDK's two retries. A wait
is the server's ``retry-after-ms`` / ``retry-after`` when it gave one above zero (the client
drops a zero, a date already past or a value that is not a finite number; no wait is longer
than ``pipeline.core.limits.MAX_PAUSE_S``), else exponential backoff with jitter;
``x-should-retry`` overrides the error's class either way (see
``pipeline.core.errors.is_retryable``).
The loop is a plain one (tenacity's set-up and bookkeeping cost 80 us a call, more than the
rest of the pool's own work: docs/benchmarks.md, "Client CPU"); the clock and sleep are
injected.
"""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from pipeline.core.errors import ConfigError, PipelineError, is_retryable
from pipeline.core.limits import MAX_PAUSE_S, Clock, Sleep

T = TypeVar("T")


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 12
    max_elapsed_s: float = 3_600.0  # per call, first attempt to last
    initial_wait_s: float = 1.0
    max_wait_s: float = (
        120.0  # the longest backoff of our own; a server's retry-after may exceed it
    )

    def __post_init__(self) -> None:
        if isinstance(self.max_attempts, bool) or not isinstance(self.max_attempts, int):
            raise ConfigError("retry.max_attempts: must be a whole number")
        if self.max_attempts < 1:
            raise ConfigError("retry.max_attempts: must be at least 1 (1 means no retries)")
        for name in ("max_elapsed_s", "initial_wait_s", "max_wait_s"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
                raise ConfigError(f"retry.{name}: must be a number of seconds above 0")

    def wait_s(self, attempt: int, error: BaseException | None, rng: random.Random) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1-based)."""
        if isinstance(error, PipelineError) and error.retry_after is not None:
            return min(error.retry_after, self.max_elapsed_s, MAX_PAUSE_S)
        ceiling = min(self.max_wait_s, self.initial_wait_s * 2.0 ** (attempt - 1))
        return ceiling * (0.5 + rng.random() / 2)  # jitter: spread retries that failed together


async def call_with_retries(
    attempt: Callable[[], Awaitable[T]],
    policy: RetryPolicy,
    *,
    clock: Clock,
    sleep: Sleep,
    rng: random.Random,
) -> T:
    """Run ``attempt`` until it succeeds, fails for good, or the policy's budget is spent;
    then re-raise the last error.

    After a failure that may pass, the wait is drawn first, then the budget is checked: no
    attempt starts after ``max_attempts``, nor once ``max_elapsed_s`` has gone, and no wait
    runs past it."""
    started = clock()
    number = 0
    while True:
        number += 1
        try:
            return await attempt()
        except Exception as exc:
            if not is_retryable(exc):
                raise
            remaining = max(0.0, policy.max_elapsed_s - (clock() - started))
            wait = min(policy.wait_s(number, exc, rng), remaining)
            if number >= policy.max_attempts or clock() - started >= policy.max_elapsed_s:
                raise
        await sleep(wait)
