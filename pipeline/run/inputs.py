"""The run's inputs: what discovery finds, read in worker threads while the calls go out.

``Reader.read_all`` sends each ``Document`` (or ``(source, InputProblem)``) to the run as
it is read; memory follows the run's capacity, not the corpus. An object in storage that is
unchanged since a finished run (same ETag and size) is reused without downloading it.

Discovery and those checks run here; the reading itself is a ``Reading``: this process's
threads (``local_reading``, PDFs' text in a ``PdfTextPool``), or a cluster's tasks
(``--executor ray``: ``pipeline.engine.cluster.reading``), which may plan each document's
first round too (a ``Planned``).
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from itertools import islice

import anyio
from anyio.abc import ObjectSendStream

from pipeline.config.spec import Job
from pipeline.core.errors import InputProblem
from pipeline.core.models import Document
from pipeline.engine.reading import Item, Reading, ReadingFactory
from pipeline.output.report import Tally
from pipeline.readers import Candidate, InputOptions
from pipeline.readers.formats import lookup
from pipeline.readers.job import input_options
from pipeline.readers.pdfpool import EXTRACTORS, PdfTextPool
from pipeline.readers.read import local_document_id, read_each
from pipeline.readers.sources import find, read_items
from pipeline.shaping.planner import Planned
from pipeline.state.store import ResultStore, document_key

READ_THREADS = 4
DISCOVER_BATCH = 64
READ_BATCH = 16  # files other than PDFs read per hand-off to a thread

Out = ObjectSendStream[Item]


class LocalReading:
    """In this process's threads; PDFs' text in ``pool``'s worker processes."""

    def __init__(self, options: InputOptions, pool: PdfTextPool) -> None:
        self.slots = READ_THREADS + pool.size
        self._options = options
        self._pdf_text = pool.read_text if options.mode == "text" else None

    async def read(self, candidates: list[Candidate]) -> list[Item]:
        read = functools.partial(read_each, candidates, self._options, self._pdf_text)
        return list(await anyio.to_thread.run_sync(read, abandon_on_cancel=True))


@contextmanager
def local_reading(job: Job, options: InputOptions, plan_tokens: int | None) -> Iterator[Reading]:
    """The default reading; the documents' first rounds are planned by the run."""
    with PdfTextPool(extract=EXTRACTORS[options.pdf_text]) as pool:  # on the 1st PDF
        yield LocalReading(options, pool)


class Reader:
    def __init__(
        self,
        job: Job,
        store: ResultStore,
        tally: Tally,
        settings: str,
        *,
        reading: ReadingFactory | None = None,
        plan_tokens: int | None = None,
    ) -> None:
        self.job, self.reading, self.plan_tokens = job, reading or local_reading, plan_tokens
        self.options = input_options(job)
        self.store, self.tally, self.settings = store, tally, settings
        self.reused = 0  # documents finished by an earlier run (objects: not downloaded)
        self._row_ids: set[str] = set()  # doc_ids of the table rows read (tables.rows)

    async def read_all(self, out: Out) -> None:
        found = iter(find(self.options))
        with self.reading(self.job, self.options, self.plan_tokens) as reading:
            await self._read_found(found, reading, out)

    async def _read_found(
        self, found: Iterator[Candidate | InputProblem], reading: Reading, out: Out
    ) -> None:
        """Read what discovery finds: in text mode a PDF alone (locally, a thread waiting on
        a worker process of the pool), other files ``READ_BATCH`` at once. Abandoned on
        cancel: a stopped run does not wait for a read (what it started stops when the
        reading closes)."""
        options = self.options
        slots = anyio.Semaphore(reading.slots)

        async def read(candidates: list[Candidate]) -> None:
            try:
                items = await reading.read(candidates)
                await self._send_read(candidates, items, out)
            except anyio.BrokenResourceError:
                group.cancel_scope.cancel()  # the run stopped taking documents
            finally:
                slots.release()

        hashed = self.store.finished_any and options.table is None
        async with out, anyio.create_task_group() as group:
            # The walk runs in a thread, a batch of entries per hand-off (not one a file);
            # with finished documents in the state, that thread hashes the files too.
            while batch := await anyio.to_thread.run_sync(_next_found, found, options, hashed):
                finished = self._finished(
                    (doc_id, item.source)
                    for item, doc_id in batch
                    if isinstance(item, Candidate) and doc_id is not None
                )
                to_read: list[Candidate] = []
                for item, _ in batch:
                    self.tally.discovered += 1
                    if isinstance(item, InputProblem):
                        if not await _send(out, (str(item.source or item.message), item)):
                            return  # the run stopped taking documents
                    elif options.table is not None:
                        if not await self._read_rows(item, out):
                            return  # the run stopped taking documents
                    elif not self._reuse_object(item) and item.source not in finished:
                        to_read.append(item)
                for chunk in _chunks(to_read, options, pdfs_alone=options.mode == "text"):
                    await slots.acquire()
                    group.start_soon(read, chunk)
            self.tally.discovery_done = True

    async def _send_read(self, candidates: list[Candidate], items: list[Item], out: Out) -> None:
        """What was read, to the run; but documents an earlier run finished. Files on disk
        were looked up before they were read; objects in storage are now."""
        documents = [item.document if isinstance(item, Planned) else item for item in items]
        finished = self._finished(
            (document.doc_id, document.source)
            for candidate, document in zip(candidates, documents, strict=True)
            if candidate.url is not None and isinstance(document, Document)
        )
        for candidate, item, document in zip(candidates, items, documents, strict=True):
            if isinstance(document, Document):
                self._remember(candidate, document)
                if document.source in finished:
                    continue
            await out.send(item)

    async def _read_rows(self, candidate: Candidate, out: Out) -> bool:
        """A table's rows, a slice at a time in a worker thread; False if the run stopped
        taking documents."""
        items = read_items(candidate, self.options, self._row_ids)
        self.tally.discovered -= 1  # the table was counted as found: its rows count instead
        try:
            while batch := await anyio.to_thread.run_sync(list, islice(items, DISCOVER_BATCH)):
                self.tally.discovered += len(batch)
                finished = self._finished(
                    (item.doc_id, item.source) for item in batch if isinstance(item, Document)
                )
                for item in batch:
                    if isinstance(item, Document) and item.source in finished:
                        continue
                    sent = item if isinstance(item, Document) else (item.source or "", item)
                    if not await _send(out, sent):
                        return False
        finally:
            items.close()
        return True

    def _finished(self, documents: Iterable[tuple[str, str]]) -> set[str]:
        """Of the documents ``(doc_id, source)`` read or hashed, the sources of those an
        earlier run finished with these settings: kept in the output, not sent to the run
        (one look-up for the lot)."""
        keyed = [(document_key(doc_id, self.settings), source) for doc_id, source in documents]
        found = self.store.reuse_many(keyed)
        self.reused += len(found)
        self.tally.reused += len(found)
        return {source for key, source in keyed if key in found}

    def _reuse_object(self, candidate: Candidate) -> bool:
        """An object in storage whose ETag and size are those of a document finished with
        these settings: reused without downloading it."""
        if candidate.url is None or candidate.etag is None:
            return False
        doc_id = self.store.object_doc(candidate.url, candidate.etag, candidate.size or 0)
        if doc_id is None:
            return False
        if not self.store.reuse(document_key(doc_id, self.settings), candidate.source):
            return False
        self.reused += 1
        self.tally.reused += 1
        return True

    def _remember(self, candidate: Candidate, document: Document) -> None:
        if candidate.url is not None and candidate.etag is not None:
            self.store.remember_object(
                candidate.url, candidate.etag, candidate.size or 0, document.doc_id
            )


async def _send(out: Out, item: Item) -> bool:
    try:
        await out.send(item)
    except anyio.BrokenResourceError:
        return False
    return True


def _is_pdf(candidate: Candidate, options: InputOptions) -> bool:
    return lookup(candidate.path.name, code=options.code).kind == "pdf"


def _next_found(
    found: Iterator[Candidate | InputProblem], options: InputOptions, hashed: bool
) -> list[tuple[Candidate | InputProblem, str | None]]:
    """The next batch discovery finds, in this (worker) thread; with ``hashed``, each file's
    ``doc_id`` from its bytes (``local_document_id``), to be looked up before it is read."""
    return [
        (item, local_document_id(item, options) if hashed and isinstance(item, Candidate) else None)
        for item in islice(found, DISCOVER_BATCH)
    ]


def _chunks(
    candidates: list[Candidate], options: InputOptions, *, pdfs_alone: bool
) -> list[list[Candidate]]:
    """What each hand-off to a thread reads: a PDF alone (its thread waits on the pool's
    worker process), other files ``READ_BATCH`` at once."""
    pdfs = [[c] for c in candidates if pdfs_alone and _is_pdf(c, options)]
    small = [c for c in candidates if not (pdfs_alone and _is_pdf(c, options))]
    return pdfs + [small[n : n + READ_BATCH] for n in range(0, len(small), READ_BATCH)]
