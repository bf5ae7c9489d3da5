"""The online engine: one call at a time in, its result out, within the tier's limits.

``Pool.submit`` makes one call: it waits for one of ``concurrency`` workers (a call holds
it through its retries), then each attempt is paced by the shared ``Pacer`` and holds a
concurrency slot from just before it is paced until its reply is read, so a slot never
waits on a burst it did not get. Each call is retried by ``pipeline.engine.retry``. With
``warm_up`` the first call goes alone: its reply writes the prompt cache for the others.

A call that can never succeed becomes a result with its error. A run-fatal error (a refused
key, an unknown model, a spend cap, a host that took no connection for a call's whole retry
budget) is raised to the caller, and no new request is sent after it. After ``stop`` no
call is sent (``NotSent``); the calls in flight finish, their retries included.
"""

from __future__ import annotations

import functools
import logging
import random
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio

from pipeline.core.defaults import CONCURRENCY
from pipeline.core.errors import (
    ConnectionFailed,
    HostUnreachable,
    NotSent,
    PipelineError,
    RateLimited,
    RequestFailed,
    RetriesExhausted,
    RunFatal,
    Transient,
)
from pipeline.core.limits import Clock, Limits, Sleep
from pipeline.core.models import Attempt, Call, CallResult, Reply
from pipeline.engine.base import Counts, RunTotals
from pipeline.engine.client import MessagesClient
from pipeline.engine.pacer import Pacer
from pipeline.engine.preflight import check_endpoint, unreachable
from pipeline.engine.retry import RetryPolicy, call_with_retries

log = logging.getLogger("pipeline.pool")


def _log_failed(call: Call, attempt: int, error: PipelineError) -> None:
    """Every failed attempt, at DEBUG: what ``--log-file`` keeps (the console shows INFO up)."""
    log.debug(
        "%s: attempt %d failed (%s): %s",
        call.key,
        attempt,
        error.kind,
        error,
        extra={
            "event": "attempt_failed",
            "call": call.key,
            "attempt": attempt,
            "error_type": error.kind,
            "status": error.status,
            "request_id": error.request_id,
        },
    )


class Pool:
    """Makes calls through one client within one set of limits (an ``Engine``)."""

    def __init__(
        self,
        client: MessagesClient,
        limits: Limits,
        *,
        retry: RetryPolicy | None = None,
        stream: bool = False,
        warm_up: bool = False,
        model: str | None = None,
        check: bool = True,
        clock: Clock = time.monotonic,
        wall: Clock = time.time,
        sleep: Sleep = anyio.sleep,
        rng: random.Random | None = None,
    ) -> None:
        self.client = client
        self.limits = limits
        self.retry = retry or RetryPolicy()
        self.stream = stream
        self.warm_up = warm_up  # send the first call alone (it writes the prompt cache)
        self.model = model  # checked against the endpoint's /v1/models before anything is sent
        self.check = check  # preflight the endpoint before the first call
        self.concurrency = self.capacity = limits.max_concurrency or CONCURRENCY
        self.pacer = Pacer(limits, clock=clock, sleep=sleep)
        # A call, its retries included; and an attempt, paced and sent. A free one is taken
        # without a trip through the event loop (fast_acquire): one fewer a call for each.
        self._workers = anyio.Semaphore(self.concurrency, fast_acquire=True)
        self._slots = anyio.Semaphore(self.concurrency, fast_acquire=True)
        self._clock, self._wall, self._sleep = clock, wall, sleep
        self._rng = rng or random.Random()
        self.counts = Counts()
        self.connected = False  # has the server answered anything yet?
        self.stopping = False
        self._leader_taken = False
        self._first_done = anyio.Event()

    async def _attempt(self, call: Call, attempts: list[Attempt]) -> Reply:
        async with self._slots:
            reservation = await self.pacer.acquire(call.input_tokens)
            started, began = self._wall(), self._clock()
            self.counts.attempts += 1
            try:
                reply = await self.client.create(
                    call.params,
                    stream=self.stream,
                    on_headers=lambda headers: self.pacer.observe(headers, reservation),
                )
            except PipelineError as exc:
                self.pacer.settle(reservation, input_tokens=None, output_tokens=0)
                self.counts.errors[exc.kind] += 1
                self.connected = self.connected or exc.status is not None
                if isinstance(exc, RateLimited):
                    wait = exc.retry_after
                    if wait is None:
                        wait = self.retry.wait_s(1, exc, self._rng)
                    self.pacer.cooldown(wait)
                attempts.append(
                    Attempt(
                        number=len(attempts) + 1,
                        started_at=started,
                        latency_s=self._clock() - began,
                        status=exc.status,
                        error_kind=exc.kind,
                        request_id=exc.request_id,
                    )
                )
                _log_failed(call, len(attempts), exc)
                raise
            self.connected = True
            usage = reply.usage
            self.pacer.settle(
                reservation, input_tokens=usage.counted_input, output_tokens=usage.output_tokens
            )
            attempts.append(
                Attempt(
                    number=len(attempts) + 1,
                    started_at=started,
                    latency_s=self._clock() - began,
                    status=200,
                    request_id=reply.request_id,
                )
            )
            return reply

    async def execute(self, call: Call) -> CallResult:
        """Make one call, with retries. Raises only ``RunFatal``."""
        attempts: list[Attempt] = []
        try:
            reply = await call_with_retries(
                lambda: self._attempt(call, attempts),
                self.retry,
                clock=self._clock,
                sleep=self._sleep,
                rng=self._rng,
            )
        except RunFatal:
            raise
        except Transient as exc:
            if isinstance(exc, ConnectionFailed):
                # Never reached: the base URL or the network is wrong. Reached before: the
                # host stopped taking connections for a whole retry budget, and every other
                # document would wait out the same budget in turn. Either way, stop.
                advice = (
                    "The host stopped accepting connections; run again when it is back"
                    if self.connected
                    else "Check the base URL and the network, then run again"
                )
                raise HostUnreachable(
                    f"{exc.message}; gave up after {len(attempts)} attempts. {advice}: "
                    "finished work is kept."
                ) from exc
            error: PipelineError = RetriesExhausted(
                f"Gave up after {len(attempts)} attempts: {exc.message}. Run again later to "
                "retry this document.",
                status=exc.status,
                error_type=exc.error_type,
                request_id=exc.request_id,
            )
            return CallResult(call, None, error, tuple(attempts))
        except RequestFailed as exc:
            return CallResult(call, None, exc, tuple(attempts))
        return CallResult(call, reply, None, tuple(attempts))

    async def preflight(self, attempts: int = 3) -> None:
        """Fail fast, before any document is sent: a refused key, an unreachable host or a
        model the endpoint does not serve stops the run here with a message that says what
        to fix (``pipeline.engine.preflight``)."""
        quick = RetryPolicy(max_attempts=attempts, initial_wait_s=0.5, max_wait_s=2.0)
        check = functools.partial(check_endpoint, self.client, model=self.model)
        try:
            await call_with_retries(
                check, quick, clock=self._clock, sleep=self._sleep, rng=self._rng
            )
        except ConnectionFailed as exc:
            raise unreachable(exc, self.client.endpoint) from exc
        except Transient:
            return  # the host answers; the run's own retries handle a busy server
        self.connected = True

    @asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        """The endpoint checked (unless ``check`` is off), then calls are taken."""
        if self.check:
            await self.preflight()
        try:
            yield
        finally:
            self._first_done.set()  # nobody waits on a warm-up call that will not come

    async def submit(self, call: Call) -> CallResult:
        """Make one call, with retries (``execute``), once a worker is free. Raises
        ``RunFatal`` (and sends nothing more after it) or ``NotSent`` once stopping."""
        if self.warm_up and not self._leader_taken:
            self._leader_taken = True  # the first call goes alone: it writes the prompt cache
            try:
                return await self._work(call)
            finally:
                self._first_done.set()
        if self.warm_up:
            await self._first_done.wait()
        return await self._work(call)

    async def _work(self, call: Call) -> CallResult:
        if self.stopping:
            raise NotSent("the run is stopping")
        async with self._workers:
            if self.stopping:
                raise NotSent("the run is stopping")  # queued, never sent: a later run does it
            try:
                return self.counts.result(await self.execute(call))
            except RunFatal:
                self.stopping = True
                raise

    def stop(self) -> None:
        """Take no new call; the calls in flight finish (their retries included)."""
        self.stopping = True
        self._first_done.set()

    def totals(self) -> RunTotals:
        return self.counts.totals()
