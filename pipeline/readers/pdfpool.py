"""PDF text in worker processes: every core, and a hard time limit per file.

pypdf is pure Python and holds the GIL, so threads read PDFs one at a time. ``PdfTextPool``
keeps one worker process per core (started with ``spawn`` on first use, so a run without
PDFs starts none) and hands each file to an idle one; ``read_text`` blocks the calling thread
until the worker answers. A worker that has not answered within ``limit_s`` (a page that
hangs the extractor: the budget in ``pdf.read_text`` is only checked between pages) is
killed and replaced, and the file becomes a ``TooLarge`` row that says so; a worker that
dies becomes an ``Unreadable`` row. Either way the run goes on.

Workers ignore SIGINT and SIGTERM: the run decides when to stop, and closes the pool. A
worker whose run was killed with ``kill -9`` exits too: when idle, its pipe closes; when busy
(even on a page that hangs), a watchdog thread sees it has a new parent.
"""

from __future__ import annotations

import os
import queue
import signal
import threading
import time
from collections.abc import Callable
from types import TracebackType
from typing import TYPE_CHECKING, Any

from pipeline.core.errors import InputProblem, TooLarge, Unreadable
from pipeline.core.models import Section
from pipeline.readers.options import PdfTextName

if TYPE_CHECKING:
    from multiprocessing.connection import Connection
    from multiprocessing.process import BaseProcess

TIME_LIMIT_S = 120.0  # as pdf.TEXT_BUDGET_S: the worker's own check, between pages, comes first
_GRACE_S = 2.0  # past the limit, for the worker's own (gentler) stop to arrive
_SPLIT_IT = (
    "split it into smaller files (e.g. qpdf --split-pages=500 in.pdf part.pdf) and run again"
)

PdfText = tuple[tuple[Section, ...], tuple[str, ...]]
Extract = Callable[[bytes, str, float], PdfText]


def cores() -> int:
    """The cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def pypdf_text(data: bytes, label: str, budget_s: float) -> PdfText:
    """The default extractor, run in the worker: ``pdf.read_text``."""
    from pipeline.readers import pdf

    return pdf.read_text(data, label, budget_s=budget_s)


def pdfium_text(data: bytes, label: str, budget_s: float) -> PdfText:
    """``inputs.pdf_text = "pdfium"``, run in the worker: ``pdfium.read_text``."""
    from pipeline.readers import pdfium

    return pdfium.read_text(data, label, budget_s=budget_s)


# What a worker runs for each ``inputs.pdf_text``.
EXTRACTORS: dict[PdfTextName, Extract] = {"pypdf": pypdf_text, "pdfium": pdfium_text}


def _orphaned(parent: int, every_s: float = 1.0) -> None:
    """In a worker: exit as soon as the run that started it is gone."""
    while os.getppid() == parent:
        time.sleep(every_s)
    os._exit(1)


def _serve(conn: Connection, extract: Extract) -> None:
    """A worker's loop: ``(data, label, budget_s)`` in, ``("ok", text)`` or
    ``("problem", InputProblem)`` out, until the pipe closes."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    threading.Thread(target=_orphaned, args=(os.getppid(),), daemon=True).start()
    while True:
        try:
            data, label, budget_s = conn.recv()
        except (EOFError, OSError):
            return
        result: tuple[str, Any]
        try:
            result = ("ok", extract(data, label, budget_s))
        except InputProblem as problem:
            result = ("problem", problem)
        except Exception as exc:  # pdf.read_text turns pypdf's errors into rows; this is a bug
            result = ("problem", Unreadable(f"{label}: the PDF reader failed ({exc!r})"))
        conn.send(result)


class _Worker:
    def __init__(self, extract: Extract) -> None:
        import multiprocessing  # with the first PDF: a run without PDFs never loads it

        context = multiprocessing.get_context("spawn")
        self.conn, child = context.Pipe()
        self.process: BaseProcess = context.Process(
            target=_serve, args=(child, extract), name="pipeline-pdf", daemon=True
        )
        self.process.start()
        child.close()

    def kill(self) -> None:
        self.process.kill()
        self.process.join()


class PdfTextPool:
    """``read_text(data, label)`` in a pool of ``size`` worker processes (default: one per
    core), each file stopped after ``limit_s`` seconds. ``extract`` is what a worker runs
    (a module-level function: it is pickled to the worker); tests inject slow ones. Use it
    as a context manager: leaving it stops the workers."""

    def __init__(
        self,
        size: int | None = None,
        *,
        limit_s: float = TIME_LIMIT_S,
        extract: Extract = pypdf_text,
    ) -> None:
        self.size = max(1, size or cores())
        self.limit_s = limit_s
        self._extract = extract
        self._idle: queue.SimpleQueue[_Worker | None] = queue.SimpleQueue()  # None: closed
        self._lock = threading.Lock()
        self._workers: set[_Worker] = set()
        self._closed = False

    def __enter__(self) -> PdfTextPool:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def read_text(self, data: bytes, label: str) -> PdfText:
        """The PDF's text, as ``pdf.read_text`` gives it; blocks until a worker answers."""
        worker = self._take()
        try:
            worker.conn.send((data, label, self.limit_s))
            if not worker.conn.poll(self.limit_s + _GRACE_S):
                raise TooLarge(
                    f"{label}: reading its text took over {self.limit_s:,g} s, too long for "
                    "one file (the reader was stopped); " + _SPLIT_IT
                )
            status, value = worker.conn.recv()
        except (EOFError, OSError) as exc:
            self._discard(worker)
            raise Unreadable(
                f"{label}: the PDF reader crashed on it (exit code {worker.process.exitcode}); "
                "it may be damaged: re-export or repair it (e.g. qpdf in.pdf out.pdf) and run "
                "again"
            ) from exc
        except TooLarge:
            self._discard(worker)
            raise
        self._idle.put(worker)
        if status == "problem":
            raise value
        text: PdfText = value
        return text

    def _take(self) -> _Worker:
        with self._lock:
            if self._closed:
                raise RuntimeError("the PDF pool is closed")
            if len(self._workers) < self.size and self._idle.empty():
                worker = _Worker(self._extract)
                self._workers.add(worker)
                return worker
        found = self._idle.get()
        with self._lock:
            if found is not None and found in self._workers:
                return found
        self._idle.put(None)  # closed meanwhile: tell the next thread waiting too
        raise RuntimeError("the PDF pool is closed")

    def _discard(self, worker: _Worker) -> None:
        """Kill a worker that overran or died; the next file starts a fresh one."""
        worker.kill()
        worker.conn.close()
        with self._lock:
            self._workers.discard(worker)
            if self._closed or len(self._workers) >= self.size:
                return
            # a thread may be waiting in _take for an idle worker: give it a fresh one
            fresh = _Worker(self._extract)
            self._workers.add(fresh)
        self._idle.put(fresh)

    @property
    def workers(self) -> int:
        """Worker processes started and not stopped."""
        with self._lock:
            return len(self._workers)

    @property
    def pids(self) -> list[int]:
        """The process ids of the workers started and not stopped."""
        with self._lock:
            return [w.process.pid for w in self._workers if w.process.pid is not None]

    def close(self) -> None:
        """Stop every worker, busy or not (a thread waiting on one gets ``Unreadable``)."""
        with self._lock:
            self._closed = True
            workers, self._workers = self._workers, set()
        self._idle.put(None)
        for worker in workers:
            worker.kill()
