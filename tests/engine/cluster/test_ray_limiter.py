"""The cluster limiter on a real local Ray cluster: a head and two worker nodes (separate
raylets, one CPU each, every address 127.0.0.1), calls from processes on both worker nodes and
from a second driver to the simulator at a tight tier. The tier holds across them all, and a
lost limiter stops the callers with nothing more sent."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import anyio
import pytest

ray = pytest.importorskip("ray")

from pipeline.core.errors import ConfigError, LimiterLost  # noqa: E402
from pipeline.core.limits import Limits  # noqa: E402
from pipeline.engine.cluster.desk import Cooldown  # noqa: E402
from pipeline.engine.cluster.limiter import connect_limiter, stop_limiter  # noqa: E402
from pipeline.simulator import Latency, SimulatorConfig, SimulatorServer  # noqa: E402
from tests.conftest import TEST_MODELS, StartSimulator, wait_for_stats  # noqa: E402
from tests.engine.cluster.callers import Gate, limits_json, run_calls  # noqa: E402
from tests.engine.cluster.conftest import ROOT, TEST_KEY, TIER, RunningCluster  # noqa: E402

pytestmark = pytest.mark.timeout(240)  # the cluster's start (~15 s alone) counts in the first


def tight_simulator(start_simulator: StartSimulator) -> SimulatorServer:
    return start_simulator(
        SimulatorConfig(
            models=TEST_MODELS,
            api_keys=frozenset({TEST_KEY}),
            limits=TIER,
            latency=Latency(fixed=0.3),
        )
    )


def assert_within_tier(stats: dict[str, Any], calls: int) -> None:
    assert stats["rate_limited"] == {}, stats["rate_limited_at"]  # one machine: none either
    assert stats["peaks"]["concurrency"] <= 4
    assert stats["peaks"]["requests_per_second"] <= 10 * 2  # a second's bucket plus its refill
    assert stats["served"]["distinct"] == calls
    assert stats["served"]["max_per_request"] == 1


def caller(cluster: RunningCluster, node: str | None = None) -> Any:
    options: dict[str, Any] = {"num_cpus": 1, "max_retries": 0}
    if node is not None:
        options["scheduling_strategy"] = cluster.on(node)
    return ray.remote(run_calls).options(**options)


def gate_for(limiter: str, parties: int) -> Any:
    return (
        ray.remote(Gate)
        .options(name=f"gate:{limiter}", namespace="pipeline-tests", num_cpus=0)
        .remote(parties)
    )


def test_the_tier_holds_for_calls_from_both_worker_nodes(
    cluster: RunningCluster, start_simulator: StartSimulator
) -> None:
    server = tight_simulator(start_simulator)
    link = connect_limiter("two-nodes", TIER)
    gate = gate_for("two-nodes", 2)
    try:
        runs = [
            caller(cluster, node).remote(link, server.url, 25, 100 * n, gate)
            for n, node in enumerate(cluster.workers)
        ]
        results = ray.get(runs)
        desk = ray.get(link.handle.stats.remote())
    finally:
        stop_limiter("two-nodes")
    assert [(r["succeeded"], r["failed"], r["fatal"], r["errors"]) for r in results] == [
        (25, 0, None, {})
    ] * 2
    assert {r["node"] for r in results} == set(cluster.workers)
    assert_within_tier(server.stats(), 50)
    assert desk.granted == 50
    assert desk.peak_holders == 2
    assert desk.in_flight == 0


def test_two_drivers_sharing_the_limiter_keep_their_sum_within_the_tier(
    cluster: RunningCluster, start_simulator: StartSimulator
) -> None:
    server = tight_simulator(start_simulator)
    link = connect_limiter("two-jobs", TIER)
    gate = gate_for("two-jobs", 3)  # two callers here, one from the other driver
    try:
        runs = [
            caller(cluster, node).remote(link, server.url, 20, 100 * n, gate)
            for n, node in enumerate(cluster.workers)
        ]
        other = subprocess.Popen(  # the second job: another driver, the same organisation
            [
                *(sys.executable, "-m", "tests.engine.cluster.callers"),
                *(cluster.cluster.address, "two-jobs", server.url, "20", "1000"),
                limits_json(TIER),
            ],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        results = ray.get(runs)
        out, err = other.communicate(timeout=180)
        desk = ray.get(link.handle.stats.remote())
    finally:
        stop_limiter("two-jobs")
    assert other.returncode == 0, err[-2000:]
    second = json.loads(out.strip().splitlines()[-1])
    assert [(r["succeeded"], r["fatal"]) for r in [*results, second]] == [(20, None)] * 3
    assert_within_tier(server.stats(), 60)
    assert desk.peak_holders == 3


def test_a_second_job_with_other_limits_is_refused_by_name(cluster: RunningCluster) -> None:
    connect_limiter("one-tier", TIER)
    try:
        with pytest.raises(ConfigError, match="already runs with"):
            connect_limiter("one-tier", Limits(requests_per_minute=6_000))
    finally:
        stop_limiter("one-tier")


def test_a_lost_limiter_stops_the_run_and_nothing_more_is_sent(
    cluster: RunningCluster, start_simulator: StartSimulator
) -> None:
    server = tight_simulator(start_simulator)
    link = connect_limiter("lost", TIER)
    run = caller(cluster, cluster.workers[0]).remote(link, server.url, 200, 0)
    wait_for_stats(server, lambda stats: stats["served"]["total"] >= 5)
    # Hold every new lease (a 429's cooldown), let what is in flight end, then kill the actor:
    # whatever the callers send after this would be a request no limiter granted.
    ray.get(link.handle.report.remote("test", [Cooldown(300.0)]))
    wait_for_stats(server, lambda stats: stats["in_flight"] == 0)
    # Every request the limiter granted, up to its end: one granted just before the cooldown
    # may still be on its way to the server, but none may be sent without a grant.
    granted = ray.get(link.handle.stats.remote()).granted
    assert stop_limiter("lost")
    result = ray.get(run, timeout=120)
    assert result["fatal"][0] == "limiter_lost"
    assert "rate limiter 'lost' is gone" in result["fatal"][1]
    assert result["succeeded"] < 200
    assert server.stats()["requests"] <= granted
    with pytest.raises(LimiterLost, match="rate limiter 'lost' is gone"):
        anyio.run(link.lease, "a later caller", [10])  # for every caller, not only the first
