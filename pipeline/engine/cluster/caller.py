"""A caller: the Ray actor that makes a cluster run's calls on one node.

It holds what the online engine holds on one machine (an HTTP client and a ``Pool``), but the
``Pool``'s pacing is a ``ClusterPacer`` that leases from the cluster limiter. The key comes
from this process's environment, by the job's variable, never from the driver.

Errors a run must act on (``RunFatal``, ``NotSent``, a missing key) come back as values, so
they reach the driver as themselves, not wrapped in Ray's.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

import ray

from pipeline.config.endpoint import ApiKey, Endpoint, resolve_endpoint
from pipeline.core.defaults import CONCURRENCY, SIMULATOR_API_KEY
from pipeline.core.errors import NotSent, PipelineError, RunFatal
from pipeline.core.limits import Limits
from pipeline.core.models import Call, CallResult
from pipeline.engine.client import MessagesClient
from pipeline.engine.cluster.limiter import RayLink
from pipeline.engine.cluster.pacer import ClusterPacer
from pipeline.engine.pool import Pool
from pipeline.engine.retry import RetryPolicy


@dataclass(frozen=True)
class CallerSpec:
    """What a caller needs to make the job's calls: everything but the key."""

    base_url: str
    key_variable: str | None  # the job's key variable (None: the usual ones, in order)
    simulated: bool = False  # a simulator's: its public key, not one from the environment
    concurrency: int = CONCURRENCY  # one caller's at once; the limiter caps the cluster's sum
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    stream: bool = False
    model: str | None = None
    check: bool = True
    allow_insecure: bool = False


def _endpoint(spec: CallerSpec) -> Endpoint:
    """The endpoint with this process's key (``ConfigError`` naming the variable if unset)."""
    if spec.simulated:
        return Endpoint(spec.base_url, ApiKey(SIMULATOR_API_KEY), key_source="the simulator")
    return resolve_endpoint(
        base_url=spec.base_url,
        key_variable=spec.key_variable,
        allow_insecure=spec.allow_insecure,
    )


class Caller:
    def __init__(self, spec: CallerSpec, link: RayLink) -> None:
        self._spec = spec
        self._pacer = ClusterPacer(link)
        self._pool: Pool | None = None
        self._closed = asyncio.Event()
        self._serving: asyncio.Task[None] | None = None

    async def _serve(self, client_ready: asyncio.Future[None]) -> None:
        """The client and the pacer's background work, open until ``close``."""
        spec = self._spec
        try:
            endpoint = _endpoint(spec)
            async with (
                MessagesClient(endpoint, concurrency=spec.concurrency) as client,
                self._pacer.running(),
            ):
                pool = Pool(
                    client,
                    Limits(max_concurrency=spec.concurrency),
                    retry=spec.retry,
                    stream=spec.stream,
                    model=spec.model,
                    check=False,
                )
                pool.pacer = self._pacer  # type: ignore[assignment]  # the cluster's pacing
                self._pool = pool
                client_ready.set_result(None)
                await self._closed.wait()
        except Exception as exc:  # to start(): a PipelineError as a value, others raised
            if not client_ready.done():
                client_ready.set_exception(exc)
            raise

    async def start(self) -> tuple[str, PipelineError | None]:
        """Open the client (the key read here); this node's id, or why it could not."""
        ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._serving = asyncio.ensure_future(self._serve(ready))
        node = ray.get_runtime_context().get_node_id()
        try:
            await ready
        except PipelineError as exc:
            return node, exc
        return node, None

    def _the_pool(self) -> Pool:
        assert self._pool is not None, "start() first"
        return self._pool

    async def preflight(self) -> PipelineError | None:
        try:
            await self._the_pool().preflight()
        except PipelineError as exc:
            return exc
        return None

    async def submit(self, call: Call) -> tuple[CallResult | None, PipelineError | None]:
        try:
            return await self._the_pool().submit(call), None
        except (RunFatal, NotSent) as exc:
            return None, exc

    async def stop(self) -> None:
        if self._pool is not None:
            self._pool.stop()

    async def close(self) -> None:
        """Calls in flight have ended (the driver waited for them): report the rest, close."""
        self._closed.set()
        if self._serving is not None:
            await self._serving
