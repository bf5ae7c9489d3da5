"""The cluster limiter as a Ray actor: one per organisation's tier, shared by name.

``connect_limiter(name, limits)`` returns a ``RayLink`` to the actor called ``name`` in the
``pipeline`` namespace, starting it if it is not running. The actor is detached: it outlives
the driver that started it, so a second job (another driver, the same organisation) joins
it by name and the sum of both stays inside the tier. It is never restarted: a restarted
limiter would have forgotten the requests in flight. ``stop_limiter(name)`` ends it.

The actor runs on the node of the driver that starts it (normally the head), takes no CPU
and never sees the API key: only token estimates, usage and rate-limit headers reach it.
A ``RayLink`` pickles to the worker processes (it holds only the actor's handle); any Ray
failure on the way to the actor becomes ``LimiterLost``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import ray
from ray.exceptions import RayError
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from pipeline.core.errors import ConfigError, LimiterLost
from pipeline.core.limits import Limits
from pipeline.engine.cluster.desk import HOLDER_TTL_S, DeskStats, Event, Lease, LeaseDesk

# A holder reports at least this often while it holds reservations: well under the TTL.
HEARTBEAT_S = 10.0

NAMESPACE = "pipeline"
# Leases wait in the actor (for the pacer, for a slot): each waiting one takes a slot of its
# event loop, so allow many more than any tier's concurrency.
_ACTOR_CONCURRENCY = 10_000
_CONNECT_TIMEOUT_S = 60.0


class _Limiter:
    """The actor: a ``LeaseDesk``, made on its own event loop at the first call."""

    def __init__(self, limits: Limits, holder_ttl_s: float) -> None:
        self._limits = limits
        self._ttl = holder_ttl_s
        self._desk: LeaseDesk | None = None

    def _get(self) -> LeaseDesk:
        if self._desk is None:
            self._desk = LeaseDesk(self._limits, holder_ttl_s=self._ttl)
        return self._desk

    async def lease(self, holder: str, sizes: list[int]) -> Lease:
        return await self._get().lease(holder, sizes)

    async def report(self, holder: str, events: list[Event]) -> None:
        self._get().report(holder, events)

    async def terms(self) -> tuple[Limits, float]:
        """The tier it keeps, and after how long a silent holder is taken for dead."""
        return self._limits, self._ttl

    async def stats(self) -> DeskStats:
        return self._get().stats()


def _actor_name(name: str) -> str:
    return f"limiter:{name}"


@dataclass(frozen=True)
class RayLink:
    """The way to the limiter actor, from any process of the cluster."""

    handle: Any  # ray.actor.ActorHandle: typed loosely by Ray
    name: str
    heartbeat_s: float = HEARTBEAT_S

    async def _call(self, ref: Any) -> Any:
        try:
            return await ref
        except RayError as exc:
            raise LimiterLost(
                f"The cluster's rate limiter {self.name!r} is gone "
                f"({type(exc).__name__}); no call is sent without it. Finished work is "
                "kept: run again, and a new limiter starts with the run."
            ) from exc

    async def lease(self, holder: str, sizes: Sequence[int]) -> Lease:
        lease: Lease = await self._call(self.handle.lease.remote(holder, list(sizes)))
        return lease

    async def report(self, holder: str, events: Sequence[Event]) -> None:
        await self._call(self.handle.report.remote(holder, list(events)))

    async def stats(self) -> DeskStats:
        stats: DeskStats = await self._call(self.handle.stats.remote())
        return stats


def connect_limiter(name: str, limits: Limits, *, holder_ttl_s: float = HOLDER_TTL_S) -> RayLink:
    """The limiter ``name`` (started here if it is not running). Needs ``ray.init`` first.

    Raises ``ConfigError`` when it runs with other limits: jobs that share a limiter share a
    tier, so they must state the same one.
    """
    here = ray.get_runtime_context().get_node_id()
    handle: Any = (  # Ray types an actor's methods as the class's, without .remote
        ray.remote(_Limiter)
        .options(
            name=_actor_name(name),
            namespace=NAMESPACE,
            lifetime="detached",
            get_if_exists=True,
            num_cpus=0,
            max_restarts=0,
            max_concurrency=_ACTOR_CONCURRENCY,
            scheduling_strategy=NodeAffinitySchedulingStrategy(here, soft=False),
        )
        .remote(limits, holder_ttl_s)
    )
    running, ttl = ray.get(handle.terms.remote(), timeout=_CONNECT_TIMEOUT_S)
    if running != limits:
        raise ConfigError(
            f"cluster limiter {name!r} already runs with {running}, not this job's {limits}: "
            "jobs sharing a limiter share one tier, so give them the same [limits], or give "
            "this job a limiter of its own"
        )
    return RayLink(handle, name, heartbeat_s=min(HEARTBEAT_S, ttl / 6))


def stop_limiter(name: str) -> bool:
    """End the limiter ``name``; False if it was not running."""
    try:
        handle = ray.get_actor(_actor_name(name), namespace=NAMESPACE)
    except ValueError:
        return False
    ray.kill(handle)
    return True
