"""A run's calls through the cluster engine (``RayEngine``) on a real local Ray cluster: calls
made by callers on the nodes, the tier kept for them all, a lost node's calls in flight sent
again elsewhere with nothing finished lost, and the key nowhere in Ray's files."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread
import pytest

ray = pytest.importorskip("ray")

from pipeline.core.models import CallResult  # noqa: E402
from pipeline.engine.base import run_calls  # noqa: E402
from pipeline.engine.cluster.caller import CallerSpec  # noqa: E402
from pipeline.engine.cluster.engine import RayEngine  # noqa: E402
from pipeline.engine.cluster.limiter import connect_limiter, stop_limiter  # noqa: E402
from pipeline.engine.retry import RetryPolicy  # noqa: E402
from pipeline.simulator import Latency, SimulatorConfig, SimulatorServer  # noqa: E402
from tests.conftest import TEST_MODELS, StartSimulator, wait_for_stats  # noqa: E402
from tests.engine.cluster.callers import KEY_VARIABLE  # noqa: E402
from tests.engine.cluster.conftest import TEST_KEY, TIER, RunningCluster  # noqa: E402
from tests.engine.test_pool import make_calls  # noqa: E402

pytestmark = pytest.mark.timeout(240)

QUICK = RetryPolicy(initial_wait_s=0.01, max_wait_s=0.05)


def spec_for(server: SimulatorServer) -> CallerSpec:
    return CallerSpec(
        base_url=server.url,
        key_variable=KEY_VARIABLE,  # set on the nodes; the driver sends no key
        concurrency=4,
        retry=QUICK,
        model="claude-haiku-4-5",
    )


def tight(start_simulator: StartSimulator) -> SimulatorServer:
    config = SimulatorConfig(
        models=TEST_MODELS, api_keys=frozenset({TEST_KEY}), limits=TIER, latency=Latency(0.3)
    )
    return start_simulator(config)


async def run_all(engine: RayEngine, count: int) -> list[CallResult]:
    results: list[CallResult] = []

    async def sink(result: CallResult) -> None:
        results.append(result)

    with anyio.fail_after(120):  # a hang fails here, saying where, not at the test's timeout
        await run_calls(engine, make_calls(count), sink)
    return results


@pytest.mark.anyio
async def test_a_run_through_callers_on_the_nodes_keeps_the_tier(
    cluster: RunningCluster, start_simulator: StartSimulator
) -> None:
    server = tight(start_simulator)
    engine = RayEngine(spec_for(server), connect_limiter("engine", TIER))
    try:
        results = await run_all(engine, 40)
    finally:
        stop_limiter("engine")
    assert sorted(r.call.key for r in results) == sorted(c.key for c in make_calls(40))
    assert all(r.ok for r in results)
    assert len({seat.node for seat in engine._seats}) == 3  # a caller on every node
    stats = server.stats()
    assert stats["rate_limited"] == {}
    assert stats["peaks"]["concurrency"] <= 4
    assert stats["peaks"]["requests_per_second"] <= 20
    assert stats["served"]["max_per_request"] == 1
    assert engine.totals().succeeded == 40


@pytest.mark.anyio
async def test_a_lost_node_loses_nothing_finished_and_its_calls_go_elsewhere(
    cluster: RunningCluster, start_simulator: StartSimulator
) -> None:
    server = tight(start_simulator)
    doomed = cluster.cluster.add_node(**cluster.node_args)  # this test's own: the others stay
    cluster.cluster.wait_for_nodes()
    engine = RayEngine(spec_for(server), connect_limiter("node-loss", TIER, holder_ttl_s=3.0))
    results: list[CallResult] = []

    async def kill_a_node() -> None:
        await anyio.to_thread.run_sync(
            lambda: wait_for_stats(server, lambda stats: stats["served"]["total"] >= 10)
        )
        assert any(seat.node == doomed.node_id for seat in engine._seats)
        await anyio.to_thread.run_sync(cluster.cluster.remove_node, doomed)

    try:
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(kill_a_node)
            results = await run_all(engine, 60)
    finally:
        stop_limiter("node-loss")
    assert sorted(r.call.key for r in results) == sorted(c.key for c in make_calls(60))
    assert all(r.ok for r in results)
    assert sum(not seat.alive for seat in engine._seats) == 1
    served = server.stats()["served"]
    assert served["distinct"] == 60
    # Only calls in flight on the lost node can have been paid twice: at most the tier's 4.
    assert sum(n - 1 for n in served["by_request"].values()) <= 4


def test_the_key_is_in_no_file_ray_writes(
    cluster: RunningCluster, start_simulator: StartSimulator
) -> None:
    server = tight(start_simulator)
    engine = RayEngine(spec_for(server), connect_limiter("secrets", TIER))
    try:
        results = anyio.run(run_all, engine, 8)
    finally:
        stop_limiter("secrets")
    assert all(r.ok for r in results)
    session = Path(cluster.cluster.head_node.get_session_dir_path())
    scanned = 0
    for path in session.rglob("*"):
        if path.is_file() and not path.is_socket():
            assert TEST_KEY.encode() not in path.read_bytes(), path
            scanned += 1
    assert scanned > 10  # the logs of every worker, raylet and the GCS were read
    text: Any = [repr(seat.handle) for seat in engine._seats] + [repr(engine.spec)]
    assert TEST_KEY not in " ".join(text)
