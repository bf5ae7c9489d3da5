"""The engine of a run on a Ray cluster: calls made on the cluster's nodes, paced as one.

``RayEngine`` implements the engine interface (``pipeline.engine.base.Engine``): the runner
submits calls to it as to the online ``Pool``. Each call goes to a caller, one Ray actor on
each node: a ``Pool`` with an HTTP client of its own whose pacing is a ``ClusterPacer``
leasing from the cluster limiter. So the calls leave from every node, and the tier holds for
the cluster as a whole (and for every other job sharing the limiter).

The API key never crosses Ray: each caller reads it from its own process's environment (the
variable the job names), so it must be set where the nodes start (``ray start``); an
``ApiKey`` refuses to be pickled, so it cannot be sent as an argument by mistake.

A caller that dies (its node was lost) takes its calls in flight with it: each is sent again
through another caller (paid again, as a resumed run pays for its calls in flight); what was
finished is the runner's already. With no caller left the run stops (``CallersLost``). A lost
limiter stops every caller (``LimiterLost``): never unlimited.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import anyio
import ray
from ray.exceptions import RayActorError, RayError
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from pipeline.core.errors import CallersLost, ConfigError, NotSent, PipelineError, RunFatal
from pipeline.core.models import Call, CallResult
from pipeline.engine.base import Counts, RunTotals
from pipeline.engine.cluster.caller import Caller, CallerSpec
from pipeline.engine.cluster.limiter import RayLink

log = logging.getLogger("pipeline.cluster")


@dataclass
class _Seat:
    handle: Any  # the caller's actor handle
    node: str
    outstanding: int = 0
    alive: bool = True


@dataclass
class RayEngine:
    """Calls through one caller per node of the cluster (``ray.init`` done), paced by
    ``link``'s limiter. ``callers``: how many (default: one per live node)."""

    spec: CallerSpec
    link: RayLink
    callers: int | None = None
    capacity: int = 0
    counts: Counts = field(default_factory=Counts)
    stopping: bool = False
    _seats: list[_Seat] = field(default_factory=list)
    _nodes: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        nodes: list[dict[str, Any]] = ray.nodes()  # type: ignore[no-untyped-call]
        self._nodes = [node["NodeID"] for node in nodes if node["Alive"]]
        if self.callers is None:
            self.callers = len(self._nodes)
        self.capacity = self.callers * self.spec.concurrency

    @asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        """Callers started on the nodes (each checks its key), the endpoint checked from one
        of them, then calls are taken; the callers end with the block."""
        try:
            await self._start()
            if self.spec.check:
                self._raise(await self._seats[0].handle.preflight.remote())
            yield
        finally:
            with anyio.CancelScope(shield=True):
                await self._close()

    async def _start(self) -> None:
        actor: Any = ray.remote(Caller)
        self._seats = []
        for n in range(self.callers or 1):
            node = self._nodes[n % len(self._nodes)]  # one a node, round the nodes
            handle = actor.options(
                num_cpus=0,
                max_restarts=0,
                max_concurrency=10_000,
                scheduling_strategy=NodeAffinitySchedulingStrategy(node, soft=False),
            ).remote(self.spec, self.link)
            self._seats.append(_Seat(handle, node))
        for seat in self._seats:
            started, error = await seat.handle.start.remote()
            if isinstance(error, ConfigError):  # no key there: say where, and how to fix it
                raise ConfigError(
                    f"on the cluster's node {started}: {error.message} Start Ray on every "
                    "node with the key in its environment (KEY=... ray start ...): the key "
                    "is never sent through Ray."
                )
            self._raise(error)
            seat.node = started

    def _raise(self, error: PipelineError | None) -> None:
        if error is not None:
            raise error

    async def _close(self) -> None:
        for seat in self._seats:
            if seat.alive:
                with contextlib.suppress(RayError):  # gone already: nothing to wait for
                    await seat.handle.close.remote()
            ray.kill(seat.handle)

    def _pick(self) -> _Seat:
        live = [seat for seat in self._seats if seat.alive]
        if not live:
            raise CallersLost(
                "Every caller on the cluster is gone (their nodes were lost): no call can be "
                "sent. Finished work is kept: run again when the cluster is back."
            )
        return min(live, key=lambda seat: seat.outstanding)

    async def submit(self, call: Call) -> CallResult:
        """One call, on the least busy live caller; sent again elsewhere if that caller dies."""
        while True:
            if self.stopping:
                raise NotSent("the run is stopping")
            seat = self._pick()
            seat.outstanding += 1
            try:
                result, error = await seat.handle.submit.remote(call)
            except RayActorError:
                seat.alive = False
                log.warning(
                    "caller on node %s is gone; %s is sent again through another",
                    seat.node,
                    call.key,
                    extra={"event": "caller_lost", "node": seat.node, "call": call.key},
                )
                continue
            finally:
                seat.outstanding -= 1
            if error is not None:
                if isinstance(error, RunFatal):
                    self.stop()
                raise error
            return self._count(result)

    def _count(self, result: CallResult) -> CallResult:
        self.counts.attempts += len(result.attempts)
        for attempt in result.attempts:
            if attempt.error_kind:
                self.counts.errors[attempt.error_kind] += 1
        return self.counts.result(result)

    def stop(self) -> None:
        """No new call is sent, here or by any caller; calls in flight finish."""
        self.stopping = True
        for seat in self._seats:
            if seat.alive:
                seat.handle.stop.remote()

    def totals(self) -> RunTotals:
        return self.counts.totals()
