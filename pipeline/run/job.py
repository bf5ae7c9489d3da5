"""One run of a job, inside its lock: documents read and answered at once, then written.

    inputs (threads) -> one task per document (``document.answer``), about as many open as
    the engine can hold -> the engine (``Pool`` or ``BatchEngine``) -> the state -> Parquet

Every input ends as exactly one row (one per chunk with ``per_chunk``): a result, an error a
user can act on, or a skip; a document a stop interrupted is left for the next run, which
pays only for its calls that had not finished.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

import anyio
from anyio.abc import ObjectReceiveStream

from pipeline.config.spec import Job
from pipeline.core.errors import InputProblem, first_pipeline_error
from pipeline.core.limits import Clock, Sleep
from pipeline.core.models import Document
from pipeline.engine.base import Engine, RunTotals
from pipeline.engine.client import MessagesClient
from pipeline.engine.pool import Pool
from pipeline.engine.reading import Item, ReadingFactory
from pipeline.engine.retry import RetryPolicy
from pipeline.output.report import Tally
from pipeline.run import finish
from pipeline.run.budget import BudgetGuard
from pipeline.run.context import Context
from pipeline.run.document import answer
from pipeline.run.finish import RunOutcome
from pipeline.run.inputs import READ_THREADS, Reader
from pipeline.run.record import Rows
from pipeline.shaping.planner import FirstRound, Planned
from pipeline.shaping.prompts import head_of, worth_caching
from pipeline.state.store import ResultStore, settings_hash

if TYPE_CHECKING:
    from pipeline.readers.tools import ToolBox

log = logging.getLogger("pipeline.run")


class JobRun:
    """A run of ``job`` with the job's ``store`` open (its lock held)."""

    def __init__(
        self,
        job: Job,
        client: MessagesClient,
        store: ResultStore,
        tally: Tally,
        *,
        kept_columns: dict[str, Any],
        chunk_tokens: int,
        retry: RetryPolicy | None = None,
        clock: Clock | None = None,
        sleep: Sleep | None = None,
        engine: Engine | None = None,
        reading: ReadingFactory | None = None,
    ) -> None:
        self.job, self.client, self.store, self.tally = job, client, store, tally
        self.settings = settings_hash(job.answer_settings())
        self.ended = "completed"
        self.fatal_error: str | None = None
        self.outcome: RunOutcome | None = None
        self.rows = Rows(job, kept_columns)
        self.engine = engine or make_engine(job, client, store, self.settings, retry, clock, sleep)
        self.context = Context(
            job,
            self.engine,
            client,
            store,
            tally,
            self.rows,
            BudgetGuard(job, tally),
            self.settings,
            chunk_tokens,
            stop=self.stop,
            stopping=lambda: self.stopping,
            tools=_review_tools(job),
        )
        # ``reading``: where the files are read (by default, here); it may plan the
        # documents' first rounds too (not a review's: it asks with tools, in its own way)
        plan_tokens = None if self.context.tools else chunk_tokens
        self.reader = Reader(
            job, store, tally, self.settings, reading=reading, plan_tokens=plan_tokens
        )

    @property
    def stopping(self) -> bool:
        """Has ``stop`` been asked (by a signal, the deadline or the budget)?"""
        return self.ended in ("interrupted", "max_duration", "budget")

    def stop(self, reason: str = "interrupted") -> None:
        """Stop taking work: calls in flight finish, then the results are written."""
        self.ended = reason
        self.engine.stop()

    async def run(self) -> RunOutcome:
        totals: RunTotals | None = None
        send, receive = anyio.create_memory_object_stream[Item](READ_THREADS * 2)
        try:
            async with send, receive, anyio.create_task_group() as group:
                group.start_soon(self.reader.read_all, send)
                async with self.engine.running():
                    await self._documents(receive)
                totals = self.engine.totals()
                group.cancel_scope.cancel()  # stopped early: no more files need reading
        except BaseExceptionGroup as grouped:
            # A run-fatal error (or a bad input path) stopped the task group: raise it as
            # itself, not wrapped, so the command line can say what to fix.
            error = first_pipeline_error(grouped)
            self.ended, self.fatal_error = "fatal", str(error or grouped)
            raise error or grouped from None
        finally:
            if self.context.reused_calls:
                log.info(
                    "%d calls of unfinished documents were answered by an earlier run: not sent",
                    self.context.reused_calls,
                    extra={"event": "calls_reused", "calls": self.context.reused_calls},
                )
            ending = finish.Ending(
                self.ended,
                self.fatal_error,
                totals,
                self.reader.reused,
                self.client.endpoint.base_url,
            )
            self.outcome = finish.write(self.job, self.store, self.tally, self.rows, ending)
        return self.outcome

    async def _documents(self, items: ObjectReceiveStream[Item]) -> None:
        """A task per document read, about as many open at once as the engine can hold."""
        open_documents = anyio.Semaphore(self.engine.capacity)

        async def answered(document: Document, first: FirstRound | None) -> None:
            try:
                if self.context.tools:
                    from pipeline.run.review import reviewed

                    await reviewed(document, self.context)
                else:
                    await answer(document, self.context, first)
            finally:
                open_documents.release()

        async with items, anyio.create_task_group() as documents:
            async for item in items:
                if self.stopping:
                    break
                if isinstance(item, tuple):
                    self._problem(*item)
                    continue
                # (what an earlier run finished is kept by the reader: not sent here)
                document, first = (
                    (item.document, item.first) if isinstance(item, Planned) else (item, None)
                )
                await open_documents.acquire()
                documents.start_soon(answered, document, first)

    def _problem(self, source: str, problem: InputProblem) -> None:
        row = self.rows.problem(source, problem)
        self.tally.document([row.status], problem.kind)
        self.store.add_other(source, [row], [])


def _review_tools(job: Job) -> ToolBox | None:
    """The review's tools (``review.tools``), or None: ``pipeline.run.review`` and the tools'
    reader are loaded only for a job that has them."""
    if not job.spec.review.tools:
        return None
    from pipeline.run.review import review_tools

    return review_tools(job)


def make_engine(
    job: Job,
    client: MessagesClient,
    store: ResultStore,
    settings: str,
    retry: RetryPolicy | None,
    clock: Clock | None,
    sleep: Sleep | None,
) -> Engine:
    """The job's engine: Message Batches (``batch = true``) or the online pool."""
    spec = job.spec
    if job.batch:
        from pipeline.engine.batch import BatchEngine  # the Batches API: only for batch = true

        return BatchEngine(
            client,
            store,
            settings=settings,
            poll_s=spec.endpoint.batch_poll_s,
            gather_s=min(2.0, spec.endpoint.batch_poll_s),
            max_attempts=spec.endpoint.batch_max_attempts,
            model=spec.model.name,
        )
    return Pool(
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
