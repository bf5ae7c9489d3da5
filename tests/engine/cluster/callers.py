"""What the cluster tests run on the worker nodes: the project's ``Pool`` sending calls
to the simulator, paced by the cluster's limiter through a ``ClusterPacer`` in place of the
process's own ``Pacer``. The workers import it (the test puts the repository on the nodes'
PYTHONPATH). Also run as the second driver of a test:
``python -m tests.engine.cluster.callers ADDRESS LIMITER URL COUNT START LIMITS_JSON``."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from dataclasses import asdict
from typing import Any

import anyio
import ray

from pipeline.config.endpoint import ApiKey, Endpoint
from pipeline.core.errors import RunFatal
from pipeline.core.limits import Limits
from pipeline.core.models import CallResult
from pipeline.engine.base import run_calls as run_through
from pipeline.engine.client import MessagesClient
from pipeline.engine.cluster.limiter import RayLink, connect_limiter
from pipeline.engine.cluster.pacer import ClusterPacer
from pipeline.engine.pool import Pool
from pipeline.engine.retry import RetryPolicy
from tests.engine.test_pool import make_calls

QUICK = RetryPolicy(initial_wait_s=0.01, max_wait_s=0.05)
# The key reaches the callers the way the README says it should: in the environment of the
# processes that make calls (set where the nodes start), never through Ray.
KEY_VARIABLE = "CLUSTER_TEST_API_KEY"


class Gate:
    """A Ray actor the callers of a test wait at until all of them are there, so that their
    calls overlap for certain (no sleeps)."""

    def __init__(self, parties: int) -> None:
        self._parties = parties
        self._arrived = 0
        self._open = asyncio.Event()

    async def arrive(self) -> None:
        self._arrived += 1
        if self._arrived >= self._parties:
            self._open.set()
        await self._open.wait()


def run_calls(
    link: RayLink, url: str, count: int, start: int, gate: Any | None = None
) -> dict[str, Any]:
    """Send ``count`` calls through a pool of 8 paced by the cluster limiter; what happened."""

    async def main() -> dict[str, Any]:
        results: list[CallResult] = []

        async def sink(result: CallResult) -> None:
            results.append(result)

        pacer = ClusterPacer(link)
        endpoint = Endpoint(url, ApiKey(os.environ[KEY_VARIABLE]), key_source=f"${KEY_VARIABLE}")
        fatal: RunFatal | None = None
        async with pacer.running(), MessagesClient(endpoint, concurrency=8) as client:
            engine = Pool(client, Limits(max_concurrency=8), retry=QUICK, check=False)
            engine.pacer = pacer  # type: ignore[assignment]  # the cluster's pacing
            if gate is not None:
                await gate.arrive.remote()
            try:
                await run_through(engine, make_calls(count, start=start), sink)
            except RunFatal as exc:
                fatal = exc
        return {
            "node": ray.get_runtime_context().get_node_id(),
            "succeeded": sum(r.ok for r in results),
            "failed": sum(not r.ok for r in results),
            "errors": engine.totals().errors,
            "leases": pacer.leases,
            "fatal": None if fatal is None else [fatal.kind, str(fatal)],
        }

    return anyio.run(main)


def main(argv: list[str]) -> None:
    """The second driver: connects to the cluster, joins the limiter by name, runs calls on
    a free CPU of the cluster, prints what happened as JSON."""
    address, limiter, url, count, start, limits_json = argv
    ray.init(address=address, log_to_driver=False, logging_level="ERROR")
    link = connect_limiter(limiter, Limits(**json.loads(limits_json)))
    gate = ray.get_actor(f"gate:{limiter}", namespace="pipeline-tests")
    task = ray.remote(num_cpus=1)(run_calls)
    print(json.dumps(ray.get(task.remote(link, url, int(count), int(start), gate))))
    ray.shutdown()


def limits_json(limits: Limits) -> str:
    return json.dumps(asdict(limits))


if __name__ == "__main__":
    main(sys.argv[1:])
