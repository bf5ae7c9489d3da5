"""Rate use at the tier's bound: one machine beside a Ray cluster under one limiter.

Run:  python -m bench.cluster_rate            (scenario 4 of bench.rate_use, 3 rows, ~4 minutes)
      python -m bench.cluster_rate --scenario 2 --documents 600   (a larger tier, ~2 minutes)
      python -m bench.cluster_rate --quick    (smoke test, 40 documents)

The workload, the bound and the simulator (``pipeline simulate`` in its own process, with the
tier's limits) are ``bench.rate_use``'s. Rows:

- one machine: our ``Pool`` with the tier's ``Limits`` in this process.
- cluster, one limiter: a local Ray cluster (a head and two worker nodes, one CPU each, on
  127.0.0.1); one caller on each worker node runs half the documents through a ``Pool``
  whose pacing is a ``ClusterPacer`` leasing from the cluster limiter (the tier's ``Limits``).
- cluster, a pacer per worker: the same two callers, each pacing the whole tier on its own
  (what a per-worker limiter does: the cluster's rate is the tier times the workers).

The key reaches the callers in their environment (set before the nodes start), never via Ray.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from typing import Any

import anyio

from bench import rate_use, table
from pipeline.config.endpoint import ApiKey, Endpoint
from pipeline.core.limits import Limits
from pipeline.core.models import Call, CallResult
from pipeline.engine.base import run_calls
from pipeline.engine.client import MessagesClient
from pipeline.engine.pool import Pool
from pipeline.engine.retry import RetryPolicy
from pipeline.simulator import DEFAULT_API_KEY

KEY_VARIABLE = "PIPELINE_BENCH_KEY"
HEADER = (
    "| run | docs | wall s | bound s (binds) | wall/bound | 429s | attempts | peak req/s "
    "| peak conc | leases (calls/lease) | start s |"
)


@contextmanager
def local_cluster(workers: int, head_cpus: int = 1) -> Iterator[tuple[Any, list[str], float]]:
    """A head (``head_cpus`` CPUs) and ``workers`` worker nodes of one CPU on 127.0.0.1;
    yields the cluster, the worker node ids and the seconds it took to start (nodes up and
    this driver connected)."""
    import ray
    from ray.cluster_utils import Cluster

    os.environ.update({"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", KEY_VARIABLE: DEFAULT_API_KEY})
    ray._private.ray_constants.ENABLE_RAY_CLUSTER = False  # this process read it at import
    node = {"num_cpus": 1, "node_ip_address": "127.0.0.1", "object_store_memory": 80 * 1024**2}
    started = time.monotonic()
    head = {**node, "num_cpus": head_cpus, "include_dashboard": False}
    cluster = Cluster(initialize_head=True, head_node_args=head)
    try:
        ids = [cluster.add_node(**node).node_id for _ in range(workers)]
        cluster.wait_for_nodes()
        ray.init(address=cluster.address, log_to_driver=False, logging_level="ERROR")
        yield cluster, ids, time.monotonic() - started
    finally:
        ray.shutdown()
        cluster.shutdown()


def calls_of(docs: Sequence[rate_use.Doc]) -> list[Call]:
    return [Call(d.key, d.params, input_tokens=d.estimate) for d in docs]


def caller(url: str, calls: list[Call], limits: Limits, link: Any | None) -> dict[str, Any]:
    """On a worker node: run ``calls`` through a ``Pool``, paced by the cluster limiter
    (``link``) or, without one, by a ``Pacer`` of its own at ``limits``."""
    from pipeline.engine.cluster.pacer import ClusterPacer

    async def main() -> dict[str, Any]:
        failed = 0

        async def sink(result: CallResult) -> None:
            nonlocal failed
            failed += 0 if result.ok else 1

        endpoint = Endpoint(url, ApiKey(os.environ[KEY_VARIABLE]), key_source="bench")
        pacer = ClusterPacer(link) if link is not None else None
        async with MessagesClient(endpoint, concurrency=limits.max_concurrency or 8) as client:
            engine = Pool(client, limits, retry=RetryPolicy(), check=False)
            began = time.time()  # the callers share this machine's clock
            if pacer is None:
                await run_calls(engine, calls, sink)
                return {"failed": failed, "leases": 0, "span": (began, time.time())}
            engine.pacer = pacer  # type: ignore[assignment]
            async with pacer.running():
                await run_calls(engine, calls, sink)
            return {"failed": failed, "leases": pacer.leases, "span": (began, time.time())}

    return anyio.run(main)


def run_cluster(
    url: str, docs: Sequence[rate_use.Doc], limits: Limits, shared: bool, nodes: list[str]
) -> tuple[float, int, int]:
    """Half the documents on each worker node; wall time (from the first caller's first call
    to the last one's end: a worker's start is in the cluster's start), lost documents, leases."""
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    from pipeline.engine.cluster.limiter import connect_limiter, stop_limiter

    link = connect_limiter("bench", limits) if shared else None
    halves = [calls_of(docs[n :: len(nodes)]) for n in range(len(nodes))]
    task = ray.remote(caller)
    try:
        refs = [
            task.options(
                num_cpus=1, scheduling_strategy=NodeAffinitySchedulingStrategy(node, soft=False)
            ).remote(url, half, limits, link)
            for node, half in zip(nodes, halves, strict=True)
        ]
        results = ray.get(refs)
    finally:
        if shared:
            stop_limiter("bench")
    wall = max(r["span"][1] for r in results) - min(r["span"][0] for r in results)
    return wall, sum(r["failed"] for r in results), sum(r["leases"] for r in results)


def measure(
    name: str,
    scenario: rate_use.Scenario,
    timing: rate_use.Timing,
    docs: list[rate_use.Doc],
    run: Any,
) -> tuple[rate_use.Row, int]:
    options = rate_use.simulator_options(scenario, timing)
    with rate_use.SimulatorProcess(rate_use.SIMULATE, options) as sim:
        sim.reset()
        wall, lost, leases = run(sim.url)
        stats = sim.stats()
    the_bound = rate_use.bound(scenario, docs, timing)
    return rate_use._row(scenario, name, docs, the_bound, wall, stats, lost), leases


def one_machine(url: str, docs: list[rate_use.Doc], limits: Limits) -> tuple[float, int, int]:
    wall, _, failed = asyncio.run(rate_use.run_ours(url, limits, docs))
    return wall, failed, 0


def format_row(row: rate_use.Row, leases: int, start_s: float | None) -> str:
    b = row.bound
    per_lease = f"{leases:,} ({row.documents / leases:.2f})" if leases else "-"
    return table.row(
        [
            row.client,
            f"{row.documents:,}",
            f"{row.wall_s:.1f}",
            f"{b.steady_s:.1f} ({b.binds})",
            f"{row.ratio:.3f}",
            f"{row.refused:,}",
            f"{row.attempts:,}",
            f"{row.peak_rps:,.0f}",
            str(row.peak_concurrency),
            per_lease,
            "-" if start_s is None else f"{start_s:.1f}",
        ]
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.cluster_rate", description=__doc__)
    parser.add_argument("--documents", type=int, help="documents (default 250; 40 with --quick)")
    parser.add_argument("--quick", action="store_true", help="a small run for a smoke test")
    parser.add_argument("--seed", type=int, default=2026, help="seed of the documents")
    parser.add_argument(
        "--scenario", default="4", help="bench.rate_use's scenario, by number (default 4)"
    )
    args = parser.parse_args(argv)
    timing = rate_use.Timing(0.3, 0.0015, (100, 900), (300, 1_000))
    chosen = next(s for s in rate_use.scenarios(2_000, 250) if s.key == args.scenario)
    documents = args.documents or (40 if args.quick else chosen.documents)
    scenario = replace(chosen, documents=documents)
    docs = rate_use.build_workload(
        scenario.documents, scenario.sizes, timing.reply_tokens, timing.max_tokens, args.seed
    )
    limits = scenario.limits
    lines = [HEADER, table.separator(HEADER)]
    row, leases = measure(
        "one machine", scenario, timing, docs, lambda u: one_machine(u, docs, limits)
    )
    lines.append(format_row(row, leases, None))
    with local_cluster(2) as (_, nodes, start_s):
        for name, shared in (
            ("cluster, one limiter", True),
            ("cluster, a pacer per worker", False),
        ):
            row, leases = measure(
                name,
                scenario,
                timing,
                docs,
                lambda u, s=shared: run_cluster(u, docs, limits, s, nodes),
            )
            lines.append(format_row(row, leases, start_s))
            print(lines[-1], file=sys.stderr, flush=True)
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
