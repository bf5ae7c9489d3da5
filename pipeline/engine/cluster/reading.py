"""Reading on a Ray cluster (``--executor ray``): files read, PDFs' text extracted and each
document's first round planned in Ray tasks spread over the cluster's nodes.

The driver lists the inputs and checks what an earlier run finished (the state is its); it
hands the rest to ``RayReading.read`` in the batches a local run reads at once (a PDF alone,
other files 16 at a time), each a task (one CPU, ``SPREAD`` over the nodes), at most
``READS_PER_CPU`` tasks per CPU of the cluster in flight: memory follows the cluster's
capacity, not the corpus. A task reads with ``readers.read_each``, exactly as a local run's
thread does, PDFs' text in a ``PdfTextPool`` of one worker process kept by the Ray worker
process for the tasks it runs next: the same per-file time limit (a file past it is killed,
a ``TooLarge`` row) and the same ``Unreadable`` row for a crashed extractor. It then plans
the document's first round (``shaping.planner.first_round``: the tokenizing of a big
document is the CPU worth moving), sent back with it as a ``Planned``. A task whose node is
lost is retried on another by Ray (three retries, its default); past that its files are error rows
that the next run reads again.

Every node reads the paths the driver listed: they must be the same files at the same paths
there (a shared file system), or URLs of object storage that every node can read. The
(device, inode) discovery saw is the driver's view of a file, so it is not checked there.
"""

from __future__ import annotations

import logging
import os
from collections import Counter
from dataclasses import replace
from typing import Any

import ray
from ray.exceptions import RayError, RayTaskError

from pipeline.config.spec import Job
from pipeline.core.errors import Unreadable
from pipeline.core.models import Document
from pipeline.engine.reading import Item
from pipeline.readers import Candidate, InputOptions
from pipeline.readers.options import PdfTextName
from pipeline.readers.pdfpool import EXTRACTORS, PdfTextPool
from pipeline.readers.read import read_each
from pipeline.shaping.planner import Planned, first_round

log = logging.getLogger("pipeline.cluster")

READS_PER_CPU = 2  # tasks in flight per CPU of the cluster: one reading, one waiting

# A Ray worker process's PDF pools, by extractor: kept for the next task it runs (a pool's
# worker process starts on the first PDF, and exits with the Ray worker).
_POOLS: dict[PdfTextName, PdfTextPool] = {}


def _pool(name: PdfTextName) -> PdfTextPool:
    pool = _POOLS.get(name)
    if pool is None:
        pool = _POOLS[name] = PdfTextPool(1, extract=EXTRACTORS[name])
    return pool


def read_batch(
    candidates: list[Candidate], options: InputOptions, job: Job, plan_tokens: int | None
) -> tuple[str, int, list[Item]]:
    """A task: the batch read (and planned), with the node and process that read it."""
    node = ray.get_runtime_context().get_node_id()
    pdf_text = _pool(options.pdf_text).read_text if options.mode == "text" else None
    items: list[Item] = []
    for candidate in candidates:
        if candidate.url is None and not candidate.path.parent.is_dir():
            items.append((candidate.source, _unseen(candidate, node)))
            continue
        [item] = read_each([candidate], options, pdf_text)
        if isinstance(item, Document) and plan_tokens is not None:
            items.append(Planned(item, first_round(job, plan_tokens, item)))
        else:
            items.append(item)
    return node, os.getpid(), items


class RayReading:
    """A run's reading on the cluster (``ray.init`` done); ``close`` cancels what is left
    and logs where the files were read (``cluster_reads``: files by node, and the pids)."""

    def __init__(self, job: Job, options: InputOptions, plan_tokens: int | None) -> None:
        cpus = int(ray.cluster_resources().get("CPU", 1))  # type: ignore[no-untyped-call]
        self.slots = max(2, cpus * READS_PER_CPU)
        self.nodes: Counter[str] = Counter()  # files read, by node id
        self.pids: set[int] = set()  # the processes that read them
        self._task: Any = ray.remote(read_batch).options(num_cpus=1, scheduling_strategy="SPREAD")
        self._job, self._options = ray.put(job), ray.put(options)  # once, not once a task
        self._plan_tokens = plan_tokens
        self._pending: set[Any] = set()

    async def read(self, candidates: list[Candidate]) -> list[Item]:
        sent = [replace(candidate, identity=None) for candidate in candidates]
        ref = self._task.remote(sent, self._options, self._job, self._plan_tokens)
        self._pending.add(ref)
        try:
            node, pid, items = await ref
        except RayTaskError:
            raise  # a bug in the reading, raised as a local run's would be
        except RayError as exc:  # the node was lost, past Ray's retries: read it next run
            return [(c.source, _lost(c, exc)) for c in candidates]
        finally:
            self._pending.discard(ref)
        self.nodes[node] += len(candidates)
        self.pids.add(pid)
        return list(items)

    def close(self) -> None:
        for ref in self._pending:
            ray.cancel(ref)
        nodes = len(self.nodes)
        log.info(
            "%d files read on %d %s of the cluster",
            sum(self.nodes.values()),
            nodes,
            "node" if nodes == 1 else "nodes",
            extra={"event": "cluster_reads", "nodes": dict(self.nodes), "pids": sorted(self.pids)},
        )


def _unseen(candidate: Candidate, node: str) -> Unreadable:
    return Unreadable(
        f"{candidate.source}: its folder {candidate.path.parent} is not on the cluster's node "
        f"{node}: every node must see the inputs at the same paths (a shared file system "
        "mounted at the same place), or name them by URL (s3://...)"
    )


def _lost(candidate: Candidate, exc: RayError) -> Unreadable:
    return Unreadable(
        f"{candidate.source}: the cluster could not read it ({type(exc).__name__}: the node "
        "that read it was lost); it is read again by the next run"
    )
