"""The only module that knows the whole flow:

    spec -> discover -> read (threads) -> chunk -> prompts -> pool (limits, retries, client)
         -> per-document assembly (map-reduce) -> Parquet

Files are read in worker threads while the API workers run; documents stream through, so
memory follows the concurrency, not the corpus. Every input ends as exactly one row (one
per chunk with ``per_chunk``): a result, an error a user can act on, or a skip.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import math
import signal
import time
from collections import Counter
from collections.abc import AsyncGenerator, Callable, Iterator
from contextlib import aclosing
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from typing import Any

import anyio
from anyio.abc import ObjectReceiveStream, ObjectSendStream, TaskStatus
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from pipeline.config.endpoint import Endpoint
from pipeline.config.paths import page_path, report_path
from pipeline.config.spec import Job
from pipeline.core import logs
from pipeline.core.errors import (
    InputProblem,
    InvalidRequest,
    NotOffered,
    PipelineError,
    RunBusy,
    Skipped,
)
from pipeline.core.limits import Clock, Sleep
from pipeline.core.models import Call, CallResult, Document, Section, Usage, utc
from pipeline.core.rows import (
    DOCUMENT_COLUMNS,
    CallRow,
    DocumentRow,
    Status,
    column_of,
    structured_columns,
)
from pipeline.engine.batch import BatchEngine
from pipeline.engine.client import MessagesClient
from pipeline.engine.pool import Engine, RunTotals
from pipeline.engine.retry import RetryPolicy
from pipeline.output import report
from pipeline.output.progress import Display
from pipeline.output.report import RunInfo, Tally
from pipeline.readers import Candidate, InputOptions, read_document, remote
from pipeline.readers.formats import lookup
from pipeline.readers.options import TableOptions
from pipeline.readers.pdfpool import PdfTextPool
from pipeline.readers.read import PdfTextReader
from pipeline.readers.sources import find, read_items
from pipeline.run.budget import BudgetGuard
from pipeline.shaping.chunking import reduce_groups, split
from pipeline.shaping.planner import Unit, first_round, request_for
from pipeline.shaping.prompts import head_of, worth_caching
from pipeline.shaping.request_tokens import estimate_request
from pipeline.shaping.tokens import estimate_text
from pipeline.state.store import ResultStore, document_key, settings_hash

log = logging.getLogger("pipeline.run")

READ_THREADS = 4
DISCOVER_BATCH = 64
READ_BATCH = 16  # files other than PDFs read per hand-off to a thread
PART_HEADER_TOKENS = 12  # "--- Part 12 ---" and the joiner, per partial answer
_SEP = "|"


@dataclass
class DocumentRun:
    """A document's progress through its calls, and what its row will say."""

    document: Document
    chunk_count: int
    started_at: float
    pending: set[str] = field(default_factory=set)
    sent: dict[str, tuple[Unit, str]] = field(default_factory=dict)  # part -> (unit, template)
    partials: dict[str, str] = field(default_factory=dict)
    order: list[str] = field(default_factory=list)
    level: int = 0
    usage: Usage = field(default_factory=Usage)
    attempts: int = 0
    latency_s: float = 0.0
    request_ids: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    done: bool = False
    rows: list[DocumentRow] = field(default_factory=list)
    call_rows: list[CallRow] = field(default_factory=list)

    def account(self, result: CallResult) -> None:
        self.attempts += len(result.attempts)
        self.latency_s += sum(a.latency_s for a in result.attempts)
        self.request_ids.extend(a.request_id for a in result.attempts if a.request_id)
        if result.reply is not None:
            self.usage = self.usage + result.reply.usage


@dataclass
class RunOutcome:
    output: Path
    calls_output: Path
    rows: int
    by_status: dict[str, int]
    totals: RunTotals | None
    reused: int = 0  # documents finished by an earlier run, not sent again
    ended: str = "completed"  # or interrupted / max_duration / budget / fatal: a re-run resumes
    report: dict[str, Any] = field(default_factory=dict)


class JobRunner:
    def __init__(
        self,
        job: Job,
        client: MessagesClient,
        *,
        retry: RetryPolicy | None = None,
        force: bool = False,
        tally: Tally | None = None,
        clock: Clock | None = None,
        sleep: Sleep | None = None,
    ) -> None:
        spec = job.spec
        self.tally = tally or Tally()
        self.settings = settings_hash(job.answer_settings())
        self.reused = 0
        self.job = job
        self.client = client
        self.budget = job.chunk_budget(estimate_text)
        self.budget_guard = BudgetGuard(job, self.tally)
        self.structured_columns = structured_columns(
            spec.structured.schema_ if spec.structured else None
        )
        options = input_options(job)
        self.kept_columns: dict[str, Any] = {}
        if options.table is not None:
            from pipeline.readers import tables  # polars and pyarrow: only for a table job

            self.kept_columns = tables.check(find(options), options.table)
        self._open: dict[str, DocumentRun] = {}
        self._row_ids: set[str] = set()  # doc_ids of the table rows read (tables.rows)
        self._followups: MemoryObjectSendStream[Call]
        self._reading_done = False
        self.ended = "completed"
        self.fatal_error: str | None = None
        self._no_count_tokens = False  # the endpoint answered 404 to count_tokens
        self.outcome: RunOutcome | None = None
        # it takes the job's lock
        self.store = ResultStore(job.state_path, output=job.output_url or job.output_path)
        if force:
            self.store.forget_all()
        self.engine: Engine | BatchEngine
        if job.batch:
            self.engine = BatchEngine(
                client,
                self.store,
                settings=self.settings,
                poll_s=spec.endpoint.batch_poll_s,
                gather_s=min(2.0, spec.endpoint.batch_poll_s),
                max_attempts=spec.endpoint.batch_max_attempts,
                model=spec.model.name,
            )
        else:
            self.engine = Engine(
                client,
                job.limits,
                retry=retry
                or RetryPolicy(
                    max_attempts=spec.retry.max_attempts, max_elapsed_s=spec.retry.max_elapsed_s
                ),
                stream=spec.endpoint.stream,
                warm_up=worth_caching(job, head_of(job.template)),
                model=spec.model.name,
                clock=clock or time.monotonic,
                sleep=sleep or anyio.sleep,
            )

    # ---- inputs ------------------------------------------------------------------------

    async def _read_all(self, out: ObjectSendStream[Document | tuple[str, InputProblem]]) -> None:
        options = input_options(self.job)
        found = iter(find(options))
        with PdfTextPool() as pool:  # its workers start with the first PDF
            await self._read_found(found, options, pool, out)

    async def _read_found(
        self,
        found: Iterator[Candidate | InputProblem],
        options: InputOptions,
        pool: PdfTextPool,
        out: ObjectSendStream[Document | tuple[str, InputProblem]],
    ) -> None:
        """Read what discovery finds: PDFs' text one file a thread, each thread waiting on a
        worker process of ``pool``; other files ``READ_BATCH`` to a thread (a hand-off a file
        cost more than reading a small one). Abandoned on cancel: a stopped run does not wait
        for a read (the pool's workers are killed when it closes)."""
        slots = anyio.Semaphore(READ_THREADS + pool.size)
        pdf_text = pool.read_text if options.mode == "text" else None

        async def read(candidates: list[Candidate]) -> None:
            try:
                items = await anyio.to_thread.run_sync(
                    functools.partial(_read_many, candidates, options, pdf_text),
                    abandon_on_cancel=True,
                )
                for candidate, item in zip(candidates, items, strict=True):
                    if isinstance(item, Document):
                        self._remember(candidate, item)
                    await out.send(item)
            except anyio.BrokenResourceError:
                group.cancel_scope.cancel()  # the run stopped taking documents
            finally:
                slots.release()

        async with out, anyio.create_task_group() as group:
            # The walk runs in a thread, a batch of entries per hand-off: one hand-off a file
            # cost more than listing it.
            while batch := await anyio.to_thread.run_sync(list, islice(found, DISCOVER_BATCH)):
                small: list[Candidate] = []
                for item in batch:
                    self.tally.discovered += 1
                    if isinstance(item, InputProblem):
                        source = item.source or item.message
                        try:
                            await out.send((str(source), item))
                        except anyio.BrokenResourceError:
                            return  # the run stopped taking documents
                    elif options.table is not None:
                        if not await self._read_rows(item, options, out):
                            return  # the run stopped taking documents
                    elif self._reuse_object(item):
                        continue
                    elif pdf_text is not None and _is_pdf(item, options):
                        await slots.acquire()
                        group.start_soon(read, [item])
                    else:
                        small.append(item)
                for start in range(0, len(small), READ_BATCH):
                    await slots.acquire()
                    group.start_soon(read, small[start : start + READ_BATCH])
            self.tally.discovery_done = True

    async def _read_rows(
        self,
        candidate: Candidate,
        options: InputOptions,
        out: ObjectSendStream[Document | tuple[str, InputProblem]],
    ) -> bool:
        """A table's rows, a slice at a time in a worker thread; False if the run stopped
        taking documents."""
        items = read_items(candidate, options, self._row_ids)
        self.tally.discovered -= 1  # the table was counted as found: its rows count instead
        try:
            while batch := await anyio.to_thread.run_sync(list, islice(items, DISCOVER_BATCH)):
                self.tally.discovered += len(batch)
                for item in batch:
                    sent = item if isinstance(item, Document) else (item.source or "", item)
                    try:
                        await out.send(sent)
                    except anyio.BrokenResourceError:
                        return False
        finally:
            items.close()
        return True

    def _reuse_object(self, candidate: Candidate) -> bool:
        """An object in storage whose ETag and size are those of a document finished with
        these settings: reused without downloading it."""
        if candidate.url is None or candidate.etag is None:
            return False
        doc_id = self.store.object_doc(candidate.url, candidate.etag, candidate.size or 0)
        if doc_id is None or not self.store.reuse(self._key_of(doc_id), candidate.source):
            return False
        self.reused += 1
        self.tally.reused += 1
        return True

    def _remember(self, candidate: Candidate, document: Document) -> None:
        if candidate.url is not None and candidate.etag is not None:
            self.store.remember_object(
                candidate.url, candidate.etag, candidate.size or 0, document.doc_id
            )

    # ---- planning ----------------------------------------------------------------------

    def _call(self, run: DocumentRun, unit: Unit, *, final: bool, template: str) -> Call:
        params = request_for(self.job, run.document, unit, template=template, final=final)
        run.pending.add(unit.key)
        run.sent[unit.key] = (unit, template)
        key = f"{run.document.doc_id}{_SEP}{unit.key}"
        return Call(key, params, input_tokens=estimate_request(params))

    def _plan(self, document: Document) -> tuple[DocumentRun, list[Call]]:
        first = first_round(self.job, self.budget, document)
        run = DocumentRun(document, first.chunk_count, time.time(), notes=first.notes)
        run.order = [unit.key for unit in first.units]
        template = self.job.template
        return run, [
            self._call(run, unit, final=first.final, template=template) for unit in first.units
        ]

    # ---- results -----------------------------------------------------------------------

    async def _on_result(self, result: CallResult) -> None:
        doc_id, _, part = result.call.key.partition(_SEP)
        run = self._open[doc_id]
        run.pending.discard(part)
        run.account(result)
        usage = result.reply.usage if result.reply is not None else Usage()
        self.budget_guard.settle(result.call)
        self.tally.call(result, self._cost(usage) or 0.0)
        self._log_calls(run, part, result)
        if not run.done:
            if result.error is not None:
                await self._failed(run, part, result)
            else:
                self._succeeded(run, part, result)
        if not run.pending:
            del self._open[doc_id]
            errors = [row.error_type for row in run.rows if row.status == "error"]
            self.tally.document([row.status for row in run.rows], next(iter(errors), None))
            run.rows.sort(key=_row_order)
            source = run.document.source
            if run.rows and all(row.status == "ok" for row in run.rows):
                self.store.save(self._key(run.document), source, run.rows, run.call_rows)
            else:
                self.store.add_other(source, run.rows, run.call_rows)
            if self._reading_done and not self._open:
                self._followups.close()

    async def _failed(self, run: DocumentRun, part: str, result: CallResult) -> None:
        error = result.error
        assert error is not None
        if (
            isinstance(error, InvalidRequest)
            and (how := await self._over_window(result.call))
            and self._resplit(run, part, how)
        ):
            return
        message = f"{run.document.source}: {error}"
        if isinstance(error, InvalidRequest):
            message += (
                " The request was refused as sent; check the job's prompt and model settings."
            )
        log.warning(message, extra={"event": "document_failed", "error_type": error.kind})
        per_chunk = part.startswith("chunk/")
        run.done = not per_chunk
        self._add_row(
            run,
            status="error",
            error_type=error.kind,
            error_message=message,
            chunk=int(part.split("/")[1]) + 1 if per_chunk else None,
        )

    async def _over_window(self, call: Call) -> str | None:
        """Was this refused because the input is over the window? Asked of count_tokens
        (free), never read from the error's wording; where the endpoint has no count_tokens
        (a gateway may not), the estimate decides: a refused request of at least half the
        window is taken as too long. Returns how it was decided, or None if it was not over."""
        try:
            counted = await self.client.count_tokens(call.params)
        except NotOffered:
            if not self._no_count_tokens:
                self._no_count_tokens = True
                log.info("the endpoint has no count_tokens: token estimates decide instead")
            return "by the estimate" if call.input_tokens * 2 >= self.job.window else None
        except PipelineError:
            return None
        return "by the server's count" if counted > self.job.window else None

    def _resplit(self, run: DocumentRun, part: str, how: str) -> bool:
        """The server counted more tokens than our estimate: split this part's text in two
        and send the halves with the same template; their answers are combined as usual.
        Only text parts of a document answered as a whole can be split (not attachments,
        not ``per_chunk`` rows)."""
        unit, template = run.sent[part]
        if unit.attachment is not None or not unit.text or part.startswith("chunk/"):
            return False
        pieces = split([Section(unit.text)], max(1_000, estimate_text(unit.text) // 2))
        if len(pieces) < 2:
            return False
        index = run.order.index(part) if part in run.order else len(run.order)
        new_keys = [f"{part}.{i}" for i in range(len(pieces))]
        run.order[index : index + 1] = new_keys
        run.notes.append(f"{part} was over the window {how}: split in {len(pieces)}")
        for key, piece in zip(new_keys, pieces, strict=True):
            call = self._call(run, Unit(key, piece.text, piece), final=False, template=template)
            self._followups.send_nowait(call)
        return True

    def _succeeded(self, run: DocumentRun, part: str, result: CallResult) -> None:
        reply = result.reply
        assert reply is not None
        # A part split again after the server found it too long ("whole.0") is a partial.
        final = "." not in part and (part == "whole" or part.startswith(("chunk/", "final/")))
        if reply.stop_reason == "max_tokens":
            run.notes.append(f"{part}: the answer was cut at model.max_tokens")
        if final:
            structured = reply.tool_input if self.job.spec.structured else None
            self._add_row(
                run,
                status="ok",
                text=reply.text,
                structured=structured,
                model=reply.model,
                stop_reason=reply.stop_reason,
                chunk=int(part.split("/")[1]) + 1 if part.startswith("chunk/") else None,
            )
            if not part.startswith("chunk/"):
                run.done = True
            return
        run.partials[part] = reply.text
        if run.pending:
            return
        self._reduce(run)

    def _reduce(self, run: DocumentRun) -> None:
        """All partial answers are in: combine them, in groups that fit, until one is left."""
        texts = [run.partials[key] for key in run.order]
        counts = [estimate_text(t) for t in texts]
        groups = reduce_groups(counts, self.budget, overhead=PART_HEADER_TOKENS)
        final = len(groups) == 1
        run.level += 1
        run.partials = {}
        run.order = (
            ["final/0"] if final else [f"reduce/{run.level}/{g}" for g in range(len(groups))]
        )
        template = self.job.spec.prompt.reduce_template
        for key, group in zip(run.order, groups, strict=True):
            joined = "\n\n".join(f"--- Part {n} ---\n{texts[i]}" for n, i in enumerate(group, 1))
            call = self._call(run, Unit(key, joined), final=final, template=template)
            self._followups.send_nowait(call)

    def _cost(self, usage: Usage) -> float | None:
        price = self.job.price
        return None if price is None else price.cost(usage, batch=self.job.batch)

    def _key(self, document: Document) -> str:
        return self._key_of(document.doc_id)

    def _key_of(self, doc_id: str) -> str:
        return document_key(doc_id, self.settings)

    # ---- rows --------------------------------------------------------------------------

    def _add_row(self, run: DocumentRun, *, status: Status, **values: Any) -> None:
        document = run.document
        structured = values.pop("structured", None)
        extra: dict[str, Any] = dict(document.kept)
        if structured is not None:
            values["structured_json"] = json.dumps(structured, ensure_ascii=False)
            properties = (
                self.job.spec.structured.schema_["properties"] if self.job.spec.structured else {}
            )
            extra.update({column_of(name): structured.get(name) for name in properties})
        row = DocumentRow(
            doc_id=document.doc_id,
            source=document.source,
            status=status,
            chunks=run.chunk_count,
            input_tokens=run.usage.input_tokens,
            output_tokens=run.usage.output_tokens,
            cache_read_input_tokens=run.usage.cache_read_input_tokens,
            cache_creation_input_tokens=run.usage.cache_creation_input_tokens,
            cost_usd=self._cost(run.usage),
            attempts=run.attempts,
            latency_s=round(run.latency_s, 3),
            request_ids=tuple(run.request_ids),
            started_at=utc(run.started_at),
            finished_at=utc(time.time()),
            kind=document.kind,
            language=document.language,
            notes=(*document.notes, *run.notes),
            content_hash=document.content_hash,
            extra=extra,
            **values,
        )
        run.rows.append(row)

    def _problem_row(self, source: str, problem: InputProblem) -> None:
        status: Status = "skipped" if isinstance(problem, Skipped) else "error"
        log.log(
            logging.INFO if status == "skipped" else logging.WARNING,
            "%s",
            problem.message,
            extra={"event": f"document_{status}", "error_type": problem.kind},
        )
        self.tally.document([status], problem.kind)
        now = utc(time.time())
        row = DocumentRow(
            doc_id=_source_id(source),
            source=source,
            status=status,
            error_type=problem.kind,
            error_message=problem.message,
            started_at=now,
            finished_at=now,
            extra=dict(problem.kept),
        )
        self.store.add_other(source, [row], [])

    def _log_calls(self, run: DocumentRun, part: str, result: CallResult) -> None:
        doc_id = run.document.doc_id
        reply = result.reply
        for attempt in result.attempts:
            ok = attempt.status == 200 and reply is not None
            row = CallRow(
                doc_id=doc_id,
                call=part,
                attempt=attempt.number,
                status=attempt.status,
                error_type=attempt.error_kind,
                request_id=attempt.request_id,
                latency_s=round(attempt.latency_s, 4),
                started_at=utc(attempt.started_at),
                input_tokens=reply.usage.input_tokens if ok and reply else None,
                output_tokens=reply.usage.output_tokens if ok and reply else None,
                stop_reason=reply.stop_reason if ok and reply else None,
            )
            run.call_rows.append(row)

    # ---- the run -----------------------------------------------------------------------

    async def _calls(
        self,
        documents: ObjectReceiveStream[Document | tuple[str, InputProblem]],
        followups: MemoryObjectReceiveStream[Call],
    ) -> AsyncGenerator[Call, None]:
        """Every call to make, while the job's budget allows it."""
        async with aclosing(self._planned(documents, followups)) as planned:
            async for call in planned:
                if not self.budget_guard.allows(call):
                    log.warning(
                        "%s; stopping: no new requests, the ones in flight finish",
                        self.budget_guard.describe(),
                        extra={"event": "budget_reached"},
                    )
                    self.stop("budget")
                    return
                yield call

    async def _planned(
        self,
        documents: ObjectReceiveStream[Document | tuple[str, InputProblem]],
        followups: MemoryObjectReceiveStream[Call],
    ) -> AsyncGenerator[Call, None]:
        async with documents:
            async for item in documents:
                if isinstance(item, tuple):
                    self._problem_row(*item)
                elif self.store.reuse(self._key(item), item.source):
                    self.reused += 1
                    self.tally.reused += 1
                else:
                    run, calls = self._plan(item)
                    self._open[item.doc_id] = run
                    for call in calls:
                        yield call
                while True:
                    try:
                        yield followups.receive_nowait()
                    except anyio.WouldBlock:
                        break
        self._reading_done = True
        if not self._open:
            self._followups.close()
        async with followups:
            async for call in followups:
                yield call

    async def run(self) -> RunOutcome:
        send_docs, receive_docs = anyio.create_memory_object_stream[
            Document | tuple[str, InputProblem]
        ](READ_THREADS * 2)
        self._followups, receive_followups = anyio.create_memory_object_stream[Call](math.inf)
        totals: RunTotals | None = None
        calls = self._calls(receive_docs, receive_followups)
        try:
            async with (
                aclosing(calls),
                receive_docs,
                self._followups,
                receive_followups,
                anyio.create_task_group() as group,
            ):
                group.start_soon(self._read_all, send_docs)
                totals = await self.engine.run(calls, self._on_result)
                group.cancel_scope.cancel()  # stopped early: no more files need reading
        except BaseExceptionGroup as grouped:
            # A run-fatal error (or a bad input path) stopped the task group: raise it as
            # itself, not wrapped, so the command line can say what to fix.
            error = _first_pipeline_error(grouped)
            self.ended, self.fatal_error = "fatal", str(error or grouped)
            raise error or grouped from None
        finally:
            try:
                outcome = self.outcome = self._write(totals)
            finally:
                self.store.close()
        return outcome

    @property
    def stopping(self) -> bool:
        """Has ``stop`` been asked (by a signal, the deadline or the budget)?"""
        return self.ended in ("interrupted", "max_duration", "budget")

    def stop(self, reason: str = "interrupted") -> None:
        """Stop taking work: calls in flight finish, then the results are written."""
        self.ended = reason
        self.engine.stop()

    def _write_page(self, summary: dict[str, Any]) -> None:
        """The report as a page, beside the JSON. The results and the JSON are written
        already: a page that cannot be drawn is a warning, never a lost night."""
        from pipeline.output import (
            page,  # Jinja2 and the charts: loaded only when a page is written
        )

        job = self.job
        try:
            page.write(summary, job.output_path, job.calls_path, job.state_path)
        except Exception as exc:  # any fault in drawing the page must not fail the run
            log.warning("could not write the report's page beside %s: %s", job.output_path, exc)

    def _keeps_earlier_output(self) -> bool:
        """A run stopped before it reached a single document (a refused key, a signal at
        once) has nothing to say: an earlier run's output, report and page stay as they
        were, rather than be replaced by empty ones."""
        return (
            self.ended != "completed"
            and self.job.output_path.exists()
            and next(self.store.output_rows(), None) is None
        )

    def _publish(self, url: str) -> None:
        """Upload the files written locally to ``url`` and beside it: calls and report first,
        the results last, each replacing what was there whole (``readers.remote``)."""
        out = self.job.output_path
        page = page_path(out)
        first = (self.job.calls_path, report_path(out), *([page] if page.exists() else []))
        for local in (*first, out):
            remote.publish(local, url if local == out else remote.sibling(url, local.name))

    def _write(self, totals: RunTotals | None) -> RunOutcome:
        from pipeline.output import sink  # polars and pyarrow: loaded when the files are written

        structured = {c: sink.dtype_for(s) for c, s in self.structured_columns.items()}
        by_status: Counter[str] = Counter()

        def counted(rows: Iterator[DocumentRow]) -> Iterator[DocumentRow]:
            for row in rows:
                by_status[row.status] += 1
                yield row

        keep = self._keeps_earlier_output()
        rows = 0
        if not keep:
            extra = {**structured, **self.kept_columns}
            rows = sink.write_rows(counted(self.store.output_rows()), self.job.output_path, extra)
            sink.write_calls(self.store.output_calls(), self.job.calls_path)
        info = RunInfo(
            job=self.job.name,
            model=self.job.spec.model.name,
            base_url=self.client.endpoint.base_url,
            output=self.job.output_path,
            limits=self.job.limits,
            price=self.job.price,
            batch=self.job.batch,
            price_basis=self.job.price_basis,
            ended=self.ended,
            fatal_error=self.fatal_error,
        )
        summary = report.build(self.tally, info)
        self.store.record_run(summary)
        # How the night ended, for whoever reads the --log-file (the console shows the report).
        log.info(
            "the run ended: %s\n%s",
            self.ended,
            report.render(summary),
            extra={"event": "ended", "ended": self.ended, logs.FILE_ONLY: True},
        )
        if not keep:
            report.write(summary, self.job.output_path)
            if self.job.spec.output.html_report:
                self._write_page(summary)
            if self.job.output_url is not None:
                self._publish(self.job.output_url)
        return RunOutcome(
            self.job.output_path,
            self.job.calls_path,
            rows,
            dict(by_status),
            totals,
            self.reused,
            self.ended,
            summary,
        )


def _table_options(job: Job) -> TableOptions | None:
    inputs = job.spec.inputs
    if inputs.text_column is None:
        return None
    spec = job.spec
    structured = structured_columns(spec.structured.schema_ if spec.structured else None)
    taken = {*DOCUMENT_COLUMNS, *structured}
    return TableOptions(
        text_column=inputs.text_column,
        id_column=inputs.id_column,
        keep=tuple((c, f"input_{c}" if c in taken else c) for c in inputs.keep_columns),
        template_columns=job.template_columns,
    )


def _is_pdf(candidate: Candidate, options: InputOptions) -> bool:
    return lookup(candidate.path.name, code=options.code).kind == "pdf"


def _read_many(
    candidates: list[Candidate], options: InputOptions, pdf_text: PdfTextReader | None
) -> list[Document | tuple[str, InputProblem]]:
    """Read each file, in this (worker) thread: its ``Document``, or what went wrong."""
    items: list[Document | tuple[str, InputProblem]] = []
    for candidate in candidates:
        try:
            items.append(read_document(candidate, options, pdf_text=pdf_text))
        except InputProblem as problem:
            items.append((candidate.source, problem))
    return items


def input_options(job: Job) -> InputOptions:
    inputs = job.spec.inputs
    return InputOptions(
        urls=job.input_urls,
        table=_table_options(job),
        paths=job.input_paths,
        include=tuple(inputs.include),
        exclude=tuple(inputs.exclude),
        gitignore=inputs.gitignore,
        skip_secrets=inputs.skip_secrets,
        follow_symlinks=inputs.follow_symlinks,
        max_file_bytes=inputs.max_file_bytes,
        mode=inputs.mode,
        scans=inputs.scans,
        code=inputs.code,
    )


def check_inputs(job: Job) -> None:
    """Raise ConfigError now, before anything is sent, if an input path matches nothing (or
    a table lacks a column the job names); StorageRefused if a bucket refuses the
    credentials."""
    options = input_options(job)
    if options.table is not None:
        from pipeline.readers import tables  # polars and pyarrow: only for a table job

        tables.check(find(options), options.table)
    else:
        next(iter(find(options)), None)


def _first_pipeline_error(group: BaseExceptionGroup[Any]) -> PipelineError | None:
    for exc in group.exceptions:
        if isinstance(exc, PipelineError):
            return exc
        if isinstance(exc, BaseExceptionGroup):
            found = _first_pipeline_error(exc)
            if found is not None:
                return found
    return None


def _row_order(row: DocumentRow) -> tuple[str, int]:
    return (row.source, row.chunk or 0)


def _source_id(source: str) -> str:
    return hashlib.sha256(source.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class RunControl:
    """How the command line runs a job, beyond the job itself.

    ``handle_signals``: SIGINT or SIGTERM stops taking work and lets the calls in flight
    finish for up to ``grace_s`` seconds; a second signal, or the end of the grace period,
    stops at once. ``max_duration_s``: the same graceful stop when the time is up (counted
    from the start, waiting for the lock included). ``wait``: wait for another run of the
    job to finish instead of exiting with ``RunBusy``. ``display`` shows progress. Either
    way what finished is written and kept, and the report says how the run ended.
    ``clock`` and ``sleep`` are the engine's: retry waits and pacing run on them (tests
    pass virtual time); by default, the real ones.
    """

    force: bool = False
    handle_signals: bool = False
    grace_s: float = 30.0
    max_duration_s: float | None = None
    wait: bool = False
    lock_poll_s: float = 1.0
    display: Display | None = None
    started: Callable[[], None] | None = None
    clock: Clock | None = None
    sleep: Sleep | None = None


async def _open_runner(
    job: Job, client: MessagesClient, control: RunControl, tally: Tally
) -> JobRunner:
    """Take the job's lock, waiting for another run to end if asked to."""
    waiting = False
    while True:
        try:
            return JobRunner(
                job,
                client,
                force=control.force,
                tally=tally,
                clock=control.clock,
                sleep=control.sleep,
            )
        except RunBusy as busy:
            if not control.wait:
                raise
            if not waiting:
                log.info("%s; waiting for it (--wait)", busy.message.split(";")[0])
                waiting = True
            await anyio.sleep(control.lock_poll_s)


async def run_job(
    job: Job,
    endpoint: Endpoint,
    control: RunControl | None = None,
    **client_options: Any,
) -> RunOutcome:
    """Run a job end to end against ``endpoint``; returns where the results are."""
    control = control or RunControl()
    check_inputs(job)
    tally = Tally()
    concurrency = job.limits.max_concurrency or 4
    async with MessagesClient(endpoint, concurrency=concurrency, **client_options) as client:
        with anyio.fail_after(control.max_duration_s if control.wait else None):
            try:
                runner = await _open_runner(job, client, control, tally)
            except TimeoutError:
                raise RunBusy(
                    "another run of this job was still active when --max-duration ran out"
                ) from None
        try:
            async with anyio.create_task_group() as group:

                def stop(reason: str) -> None:
                    runner.stop(reason)
                    waiting = (
                        "batches already submitted finish on the server; the next run collects them"
                        if job.batch
                        else f"requests in flight may finish within {control.grace_s:.0f} s"
                    )
                    log.info(
                        "stopping (%s): no new requests; %s",
                        reason.replace("_", "-"),
                        waiting,
                        extra={"event": "stopping", "reason": reason},
                    )
                    group.start_soon(hard_stop_after_grace)

                async def hard_stop_after_grace() -> None:
                    await anyio.sleep(control.grace_s)
                    group.cancel_scope.cancel()

                async def watch_signals(*, task_status: TaskStatus[None]) -> None:
                    with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
                        task_status.started()
                        async for _ in signals:
                            if runner.stopping:
                                group.cancel_scope.cancel()  # a second signal: now
                                return
                            stop("interrupted")

                async def deadline(seconds: float) -> None:
                    await anyio.sleep(max(0.0, seconds - tally.elapsed()))
                    if not runner.stopping:
                        stop("max_duration")

                if control.handle_signals:
                    await group.start(watch_signals)
                if control.max_duration_s is not None:
                    group.start_soon(deadline, control.max_duration_s)
                if control.display is not None:
                    group.start_soon(control.display.run, tally)
                if control.started is not None:
                    control.started()
                await runner.run()
                group.cancel_scope.cancel()
        except BaseExceptionGroup as grouped:
            raise _first_pipeline_error(grouped) or grouped from None  # as itself, unwrapped
        assert runner.outcome is not None  # written in run()'s finally, stopped or not
        return runner.outcome
