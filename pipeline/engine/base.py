"""The engine interface: what the runner knows of whatever makes the calls.

An engine takes one call at a time (``submit``) and gives back how it ended, retried as the
engine does; the online ``Pool`` (``pool.py``) and the Message Batches ``BatchEngine``
(``batch.py``) implement it, and so can another executor (a process, a cluster). The runner
talks only to this protocol.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterable, Awaitable, Callable, Iterable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Protocol

import anyio

from pipeline.core.errors import NotSent, first_pipeline_error
from pipeline.core.models import Call, CallResult


@dataclass(frozen=True)
class RunTotals:
    """What an engine did in a run, for the report."""

    calls: int
    succeeded: int
    failed: int
    attempts: int
    errors: dict[str, int]


class Engine(Protocol):
    """Makes calls. ``capacity``: the calls it can usefully hold at once (a pool: its
    concurrency; batches: a batch's worth); the runner keeps about that many documents open."""

    capacity: int

    def running(self) -> AbstractAsyncContextManager[None]:
        """The engine at work: its checks before anything is sent, its background tasks."""
        ...

    async def submit(self, call: Call) -> CallResult:
        """One call, retried as the engine does. Raises ``RunFatal`` (stop the run) or
        ``NotSent`` (the engine is stopping: the call was never sent)."""
        ...

    def stop(self) -> None:
        """No new call is sent; the calls in flight finish."""
        ...

    def totals(self) -> RunTotals:
        """What it did so far."""
        ...


class Counts:
    """The running totals an engine keeps: results given back, attempts, errors by kind."""

    def __init__(self) -> None:
        self.succeeded = 0
        self.failed = 0
        self.attempts = 0
        self.errors: Counter[str] = Counter()

    def result(self, result: CallResult) -> CallResult:
        if result.ok:
            self.succeeded += 1
        else:
            self.failed += 1
        return result

    def totals(self) -> RunTotals:
        return RunTotals(
            calls=self.succeeded + self.failed,
            succeeded=self.succeeded,
            failed=self.failed,
            attempts=self.attempts,
            errors=dict(self.errors),
        )


Sink = Callable[[CallResult], Awaitable[None]]


async def run_calls(
    engine: Engine, calls: Iterable[Call] | AsyncIterable[Call], sink: Sink
) -> RunTotals:
    """Every call of ``calls`` through ``engine`` (inside its ``running``), ``capacity`` at a
    time; each result to ``sink`` as it arrives. Calls the engine did not send (it was
    stopped) are left out. For callers with a plain list of calls (benchmarks, tests); a job
    goes document by document (``pipeline.run``)."""
    slots = anyio.Semaphore(engine.capacity)

    async def one(call: Call) -> None:
        try:
            result = await engine.submit(call)
        except NotSent:
            return
        finally:
            slots.release()
        await sink(result)

    try:
        async with engine.running(), anyio.create_task_group() as group:
            if isinstance(calls, AsyncIterable):
                async for call in calls:
                    await slots.acquire()
                    group.start_soon(one, call)
            else:
                for call in calls:
                    await slots.acquire()
                    group.start_soon(one, call)
    except BaseExceptionGroup as grouped:
        raise first_pipeline_error(grouped) or grouped from None  # as itself, unwrapped
    return engine.totals()
