"""The local Ray cluster the cluster tests share: a head and two worker nodes, separate raylets
with one CPU each, every address 127.0.0.1, no dashboard, workers' logs kept from the driver.
Started once for this folder's tests (about 15 s), stopped after them."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from pipeline.core.limits import Limits
from tests.engine.cluster.callers import KEY_VARIABLE

ROOT = Path(__file__).resolve().parents[3]
TEST_KEY = "sk-cluster-test-0123456789"
# 10 requests a second enforced per second, 4 at once: tight enough that two workers each
# pacing on its own would be refused.
TIER = Limits(
    requests_per_minute=600, tokens_per_minute=150_000, max_concurrency=4, per_second=True
)
NODE_ARGS: dict[str, Any] = {
    "num_cpus": 1,
    "node_ip_address": "127.0.0.1",
    "object_store_memory": 80 * 1024**2,
}


@dataclass(frozen=True)
class RunningCluster:
    cluster: Any  # ray.cluster_utils.Cluster
    workers: tuple[str, ...]  # the worker nodes' ids
    node_args: dict[str, Any]  # how a node of it starts (to add one)

    def on(self, node: str) -> Any:
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        return NodeAffinitySchedulingStrategy(node, soft=False)


@pytest.fixture(scope="package")
def cluster() -> Iterator[RunningCluster]:
    ray = pytest.importorskip("ray")
    from ray.cluster_utils import Cluster

    env = {
        # Ray takes the machine's first address otherwise: keep every node on loopback.
        "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",
        # The workers import tests.engine.cluster.callers.
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
        # The key is in the environment of the processes that make calls, never in Ray's.
        KEY_VARIABLE: TEST_KEY,
    }
    saved = {name: os.environ.get(name) for name in env}
    os.environ.update(env)  # for the processes the cluster starts
    loopback = pytest.MonkeyPatch()  # and for this one, where Ray read it at import
    loopback.setattr(ray._private.ray_constants, "ENABLE_RAY_CLUSTER", False)
    cluster = Cluster(
        initialize_head=True, head_node_args={**NODE_ARGS, "include_dashboard": False}
    )
    try:
        workers = tuple(cluster.add_node(**NODE_ARGS).node_id for _ in range(2))
        cluster.wait_for_nodes()
        ray.init(address=cluster.address, log_to_driver=False, logging_level="ERROR")
        yield RunningCluster(cluster, workers, NODE_ARGS)
    finally:
        ray.shutdown()
        cluster.shutdown()
        loopback.undo()
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
