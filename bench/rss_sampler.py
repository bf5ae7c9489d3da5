"""RSS of a running ``pipeline run`` over time, by phase, for ``bench.scale``.

A thread reads ``/proc/PID/status`` (VmRSS) and ``/proc/PID/stat`` (CPU) every ``every``
seconds while the run lasts, and tells the run's phase: **running** until the state holds
every document (``max(rowid)`` of its ``documents`` table, read every other sample from a
read-only connection: growth can be read per document), **ending** until the first Parquet
file is being written (its ``.NAME.XXXX.partial`` appears: the run's close, the imports of
the writer), **write** until the JSON report is there, then **page** (the HTML report) until
the process exits.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path

from bench.proc import cpu_seconds

PHASES = ("running", "ending", "write", "page")


@dataclass
class Sample:
    at: float  # seconds since the run started
    rss_mb: float
    cpu_s: float
    phase: str
    documents: int | None


@dataclass
class Samples:
    samples: list[Sample] = field(default_factory=list)

    def peak(self, phase: str) -> float:
        return max((s.rss_mb for s in self.samples if s.phase == phase), default=0.0)

    def end_of_running(self) -> Sample | None:
        running = [s for s in self.samples if s.phase == "running"]
        return running[-1] if running else None

    def at_documents(self, counts: list[int]) -> list[tuple[int, float]]:
        """RSS when the state first held at least each of ``counts`` documents."""
        found = []
        for count in counts:
            hit = next(
                (s for s in self.samples if s.documents is not None and s.documents >= count), None
            )
            if hit is not None:
                found.append((count, hit.rss_mb))
        return found


def _rss_mb(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def _phase(out: Path) -> str:
    report = out.with_name(f"{out.stem}.report.json")
    if report.exists():
        return "page"
    try:
        names = os.listdir(out.parent)
    except OSError:
        return "running"
    return "write" if any(n.endswith(".partial") for n in names) else "running"


def _documents(state: Path) -> int | None:
    try:
        with closing(sqlite3.connect(f"file:{state}?mode=ro", uri=True, timeout=1)) as db:
            found = db.execute("select max(rowid) from documents").fetchone()[0]
        return int(found or 0)
    except sqlite3.Error:
        return None


class Sampler:
    """Samples ``pid`` in a thread until ``stop``; ``out`` is the run's results file."""

    def __init__(
        self, pid: int, out: Path, documents: int, every: float = 0.5, count_every: int = 2
    ) -> None:
        self.result = Samples()
        self._pid, self._out, self._every, self._count_every = pid, out, every, count_every
        self._total = documents
        self._state = out.with_name(f"{out.stem}.state.sqlite")
        self._stop = threading.Event()
        self._started = time.perf_counter()
        self._phase = "running"
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        n = 0
        while not self._stop.is_set():
            rss = _rss_mb(self._pid)
            if rss is None:
                return
            # Phases only move forward: the write's partial files come and go.
            found = _phase(self._out)
            documents = None
            if self._phase == "running" and n % self._count_every == 0:
                documents = _documents(self._state)
                if documents is not None and documents >= self._total and found == "running":
                    found = "ending"
            if PHASES.index(found) > PHASES.index(self._phase):
                self._phase = found
            at = time.perf_counter() - self._started
            self.result.samples.append(
                Sample(at, rss, cpu_seconds(self._pid), self._phase, documents)
            )
            n += 1
            self._stop.wait(self._every)

    def stop(self) -> Samples:
        self._stop.set()
        self._thread.join()
        return self.result
