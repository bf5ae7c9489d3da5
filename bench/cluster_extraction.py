"""Extraction on a Ray cluster: PDF pages/s read by 1 and by 2 worker nodes, beside one machine.

Run:  python -m bench.cluster_extraction            (60 generated PDFs, 3 rounds, ~4 minutes)
      python -m bench.cluster_extraction --quick    (smoke test, 12 PDFs, 1 round)

The corpus is ``bench.extraction``'s generated PDFs (multi-page, real text). Rows, each reading
every PDF in text mode as a run reads it (a PDF a batch, as many batches at once as the
reading has slots), warmed before the clock:

- one machine: ``bench.extraction.read_runner``, the runner's local reading (threads, a
  ``PdfTextPool`` of one worker process per core of this machine).
- cluster, N worker nodes: ``pipeline.engine.cluster.reading.RayReading``, the reading of
  ``--executor ray``: a Ray task per PDF, ``SPREAD`` over the nodes, each extracting in its
  Ray worker's one-process ``PdfTextPool``. The cluster is a head with no CPU (nothing runs
  there) and N worker nodes of one CPU each (``--num-cpus 1``) on 127.0.0.1; the second node
  is added after the 1-node rounds. First rounds are not planned (extraction only).

On a 2-core machine, 2 nodes of 1 CPU are the machine's 2 cores: the one-machine row (2 pool
workers) is the ceiling, and what to read is the ratio of 2 nodes to 1.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import anyio

from bench import table
from bench.cluster_rate import local_cluster
from bench.extraction import ROOT, Corpus, generated_pdfs, read_runner
from pipeline.readers import Candidate, InputOptions

HEADER = "| reading | files | pages | wall s (median) | pages/s | vs 1 node | files by node |"


def read_on_cluster(corpus: Corpus, options: InputOptions) -> tuple[float, list[int], float]:
    """Wall seconds for the cluster's reading of ``corpus`` (the tasks warmed first), the
    files each node read, and the seconds the warming took (the first batch at once)."""
    import pipeline
    from pipeline.engine.cluster.reading import RayReading

    job = pipeline.load_job(ROOT / "jobs" / "summarize.toml", inputs=[str(corpus.root)])
    reading = RayReading(job, options, None)

    async def read_all(candidates: Sequence[Candidate]) -> None:
        slots = anyio.Semaphore(reading.slots)

        async def one(candidate: Candidate) -> None:
            try:
                items = await reading.read([candidate])
                if isinstance(items[0], tuple):
                    raise RuntimeError(f"{candidate.source}: {items[0][1]}")
            finally:
                slots.release()

        async with anyio.create_task_group() as group:
            for candidate in candidates:
                await slots.acquire()
                group.start_soon(one, candidate)

    started = time.monotonic()
    anyio.run(read_all, corpus.candidates[: reading.slots])  # every node's worker started
    warm = time.monotonic() - started
    reading.nodes.clear()
    started = time.monotonic()
    anyio.run(read_all, corpus.candidates)
    return time.monotonic() - started, sorted(reading.nodes.values(), reverse=True), warm


def join_s(address: str) -> float:
    """Seconds a driver takes to join the running cluster (as a run with ``--address``)."""
    import ray

    ray.shutdown()
    started = time.monotonic()
    ray.init(address=address, log_to_driver=False, logging_level="ERROR")
    return time.monotonic() - started


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.cluster_extraction")
    parser.add_argument("--pdfs", type=int, help="generated PDFs (60; 12 with --quick)")
    parser.add_argument("--rounds", type=int, help="rounds (3; 1 with --quick)")
    parser.add_argument("--quick", action="store_true", help="a small corpus, one round")
    parser.add_argument("--seed", type=int, default=2026)
    args = parser.parse_args(argv)
    rounds = args.rounds or (1 if args.quick else 3)
    options = InputOptions(paths=(Path("."),))
    walls: dict[str, list[float]] = {"one machine": [], "cluster, 1 node": [], "cluster, 2": []}
    spread: dict[str, list[int]] = {}
    warm: dict[str, list[float]] = {"cluster, 1 node": [], "cluster, 2": []}
    with tempfile.TemporaryDirectory(prefix="bench-cluster-extraction-") as tmp:
        corpus = generated_pdfs(
            Path(tmp) / "pdfs", args.pdfs or (12 if args.quick else 60), (5, 40), args.seed
        )
        with local_cluster(1, head_cpus=0) as (cluster, _, start_s):
            joined = join_s(cluster.address)
            for _ in range(rounds):
                walls["one machine"].append(read_runner(corpus.candidates, options).timed.wall_s)
                wall, spread["cluster, 1 node"], first = read_on_cluster(corpus, options)
                walls["cluster, 1 node"].append(wall)
                warm["cluster, 1 node"].append(first)
            cluster.add_node(num_cpus=1, node_ip_address="127.0.0.1")
            cluster.wait_for_nodes()
            for _ in range(rounds):
                wall, spread["cluster, 2"], first = read_on_cluster(corpus, options)
                walls["cluster, 2"].append(wall)
                warm["cluster, 2"].append(first)
    print(f"cluster start (head + 1 worker node, driver connected): {start_s:.1f} s")
    print(f"a driver joining the running cluster: {joined:.1f} s")
    for name, times in warm.items():
        print(
            f"first batch read, {name.replace('2', '2 nodes')}: "
            + ", ".join(f"{t:.1f}" for t in times)
            + " s"
        )
    print()
    print(HEADER)
    print(table.separator(HEADER))
    one_node = statistics.median(walls["cluster, 1 node"])
    for name, times in walls.items():
        wall = statistics.median(times)
        label = "cluster, 2 nodes" if name == "cluster, 2" else name
        cells = [label, str(len(corpus.candidates)), str(corpus.pages), f"{wall:.2f}"]
        by_node = "/".join(map(str, spread.get(name, []))) or "-"
        cells += [f"{corpus.pages / wall:.0f}", f"{one_node / wall:.2f}x", by_node]
        print(table.row(cells))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
