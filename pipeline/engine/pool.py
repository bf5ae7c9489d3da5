"""The worker pool: calls in, results out, within the tier's limits.

Calls stream through a bounded memory stream to ``concurrency`` workers; results stream
through another to one sink, as they arrive. Memory grows with the concurrency, never with
the number of calls. Each call is retried by ``pipeline.engine.retry`` and paced by the shared
``Pacer``; a request holds a concurrency slot from just before it is paced until its reply
is read, so a slot never waits on a burst it did not get.

A call that can never succeed becomes a result with its error. A run-fatal error (a refused
key, an unknown model, a spend cap, a host that took no connection for a call's whole retry
budget) stops the run at once: no new request is sent, the results already finished still
reach the sink, and the error is raised to the caller.
"""

from __future__ import annotations

import functools
import logging
import random
import time
from collections import Counter
from collections.abc import AsyncIterable, Awaitable, Callable, Iterable
from dataclasses import dataclass

import anyio
from anyio.abc import ObjectReceiveStream, ObjectSendStream

from pipeline.core.errors import (
    ConnectionFailed,
    HostUnreachable,
    PipelineError,
    RateLimited,
    RequestFailed,
    RetriesExhausted,
    RunFatal,
    Transient,
)
from pipeline.core.limits import Clock, Limits, Sleep
from pipeline.core.models import Attempt, Call, CallResult, Reply
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


Sink = Callable[[CallResult], Awaitable[None]]
DEFAULT_CONCURRENCY = 8


@dataclass(frozen=True)
class RunTotals:
    """What a pool run did, for the report."""

    calls: int
    succeeded: int
    failed: int
    attempts: int
    errors: dict[str, int]


class Engine:
    """Runs calls through one client within one set of limits."""

    def __init__(
        self,
        client: MessagesClient,
        limits: Limits,
        *,
        retry: RetryPolicy | None = None,
        stream: bool = False,
        warm_up: bool = False,
        model: str | None = None,
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
        self.concurrency = limits.max_concurrency or DEFAULT_CONCURRENCY
        self.pacer = Pacer(limits, clock=clock, sleep=sleep)
        self._slots = anyio.CapacityLimiter(self.concurrency)
        self._clock, self._wall, self._sleep = clock, wall, sleep
        self._rng = rng or random.Random()
        self.errors: Counter[str] = Counter()
        self.attempts = 0
        self.connected = False  # has the server answered anything yet?
        self.stopping = False
        self._feed_scope = anyio.CancelScope()

    async def _attempt(self, call: Call, attempts: list[Attempt]) -> Reply:
        async with self._slots:
            reservation = await self.pacer.acquire(call.input_tokens)
            started, began = self._wall(), self._clock()
            self.attempts += 1
            try:
                reply = await self.client.create(
                    call.params,
                    stream=self.stream,
                    on_headers=lambda headers: self.pacer.observe(headers, reservation),
                )
            except PipelineError as exc:
                self.pacer.settle(reservation, input_tokens=None, output_tokens=0)
                self.errors[exc.kind] += 1
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

    def stop(self) -> None:
        """Take no new call; the calls in flight finish (their retries included)."""
        self.stopping = True
        self._feed_scope.cancel()

    async def run(
        self, calls: Iterable[Call] | AsyncIterable[Call], sink: Sink, *, check: bool = True
    ) -> RunTotals:
        """Run every call; hand each result to ``sink`` as it arrives."""
        if check:
            await self.preflight()
        fatal: list[RunFatal] = []
        totals: Counter[str] = Counter()
        send_calls, receive_calls = anyio.create_memory_object_stream[Call](self.concurrency)
        send_results, receive_results = anyio.create_memory_object_stream[CallResult](
            self.concurrency
        )

        async def feed() -> None:
            with self._feed_scope, send_calls:
                if isinstance(calls, AsyncIterable):
                    async for call in calls:
                        await send_calls.send(call)
                else:
                    for call in calls:
                        await send_calls.send(call)

        first_done = anyio.Event()

        async def work(
            inbox: ObjectReceiveStream[Call],
            outbox: ObjectSendStream[CallResult],
            stop: anyio.CancelScope,
            leader: bool,
        ) -> None:
            if self.warm_up and not leader:
                await first_done.wait()  # the first reply writes the prompt cache for all
            async with inbox, outbox:
                try:
                    async for call in inbox:
                        if self.stopping:
                            continue  # queued, never sent: a later run does it
                        try:
                            result = await self.execute(call)
                        except RunFatal as exc:
                            fatal.append(exc)
                            stop.cancel()
                            return
                        finally:
                            first_done.set()
                        # A finished result was paid for: it reaches the sink even if the
                        # run is being stopped around it.
                        with anyio.CancelScope(shield=True):
                            await outbox.send(result)
                finally:
                    # No first call at all (the budget refused it, or a stop came first):
                    # the others must not wait for it forever.
                    first_done.set()

        async def drain() -> None:
            async with receive_results:
                async for result in receive_results:
                    totals["succeeded" if result.ok else "failed"] += 1
                    await sink(result)

        async with anyio.create_task_group() as outer:
            outer.start_soon(drain)
            async with send_results, receive_calls, anyio.create_task_group() as workers:
                workers.start_soon(feed)
                for n in range(self.concurrency):
                    workers.start_soon(
                        work,
                        receive_calls.clone(),
                        send_results.clone(),
                        workers.cancel_scope,
                        n == 0,
                    )
        if fatal:
            raise fatal[0]
        return RunTotals(
            calls=totals["succeeded"] + totals["failed"],
            succeeded=totals["succeeded"],
            failed=totals["failed"],
            attempts=self.attempts,
            errors=dict(self.errors),
        )
