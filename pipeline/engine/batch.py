"""Message Batches: the same calls, sent at half price through ``/v1/messages/batches``.

``BatchEngine`` is an ``Engine`` (``pipeline.engine.base``) as ``pool.Pool`` is, so the
runner's per-document logic (rows, map-reduce, resume) is the same in both modes: ``submit``
puts a call in the buffer and waits for its result. Calls are gathered while they arrive
and submitted together (inside ``running``) once none has arrived for a moment (or a batch
is full: 100,000 requests or 256 MB); map-reduce documents therefore go through as two
rounds: their parts, then the combining requests made from the parts' answers.

Durability. Before a batch is created its requests are recorded in the job's state
(``custom_id`` and attempt, keyed by a hash of the settings, the call and its body); once
created, its id. A run that is stopped, killed or interrupted leaves the batches to finish
on the server: the next run, planning the same calls, finds them there and polls instead of
submitting again. Results are kept by the API for 29 days. Only the few seconds between
creating a batch and recording its id are unprotected (the API offers no way to find a
batch by its requests): a kill exactly then submits those requests again.

Retries. ``errored`` results whose error can pass (500, 529, ...) and ``expired`` or
``canceled`` ones are submitted again in a later batch, under a new ``custom_id``, up to
``max_attempts``; an error that cannot pass becomes the call's error at once.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace

import anyio

from pipeline.core.errors import NotSent, PipelineError, RetriesExhausted, is_retryable
from pipeline.core.limits import Clock, Sleep
from pipeline.core.models import Attempt, Call, CallResult
from pipeline.engine.base import Counts, RunTotals
from pipeline.engine.client import BatchResult, MessagesClient
from pipeline.engine.preflight import check_endpoint
from pipeline.state.store import ResultStore

log = logging.getLogger("pipeline.batch")

MAX_REQUESTS = 100_000
MAX_BYTES = 200_000_000  # under the API's 256 MB, for the envelope and JSON escaping


@dataclass
class _Pending:
    call: Call
    base: str
    attempt: int
    attempts: list[Attempt] = field(default_factory=list)
    sent: float = 0.0  # when its batch was created (or found), on the monotonic clock
    ended: anyio.Event = field(default_factory=anyio.Event)
    result: CallResult | None = None

    def record(self, batch_id: str, wall: float, now: float) -> None:
        self.sent = now
        self.attempts.append(Attempt(len(self.attempts) + 1, wall, 0.0, None, request_id=batch_id))

    def settled(self, result: BatchResult | None, now: float) -> None:
        """The last attempt's outcome: 200 with a reply, else the kind of failure."""
        if not self.attempts:
            return
        kind = "missing" if result is None else result.kind
        if result is not None and result.error is not None:
            kind = result.error.kind
        self.attempts[-1] = replace(
            self.attempts[-1],
            latency_s=now - self.sent,
            status=200 if result is not None and result.reply is not None else None,
            error_kind=None if result is not None and result.reply is not None else kind,
        )

    @property
    def custom_id(self) -> str:
        return f"{self.base[:48]}-{self.attempt}"


class BatchEngine:
    def __init__(
        self,
        client: MessagesClient,
        store: ResultStore,
        *,
        settings: str,
        poll_s: float = 60.0,
        gather_s: float = 2.0,
        max_attempts: int = 3,
        max_requests: int = MAX_REQUESTS,
        max_bytes: int = MAX_BYTES,
        model: str | None = None,
        clock: Clock = time.monotonic,
        wall: Clock = time.time,
        sleep: Sleep = anyio.sleep,
    ) -> None:
        self.client, self.store, self.settings = client, store, settings
        self.poll_s, self.gather_s, self.max_attempts = poll_s, gather_s, max_attempts
        self.max_requests, self.max_bytes = max_requests, max_bytes
        self.model = model  # checked against /v1/models before anything is sent
        self._clock, self._wall, self._sleep = clock, wall, sleep
        self.capacity = max_requests  # a batch's worth of calls waiting at once
        self.check = True  # the endpoint checked before anything is sent
        self.stopping = False
        self.counts = Counts()
        self._buffer: deque[_Pending] = deque()
        self._waiting: dict[str, _Pending] = {}  # custom_id -> pending, in a batch
        self._batches: dict[str, set[str]] = {}  # batch id -> custom ids awaited
        self._last_arrival = 0.0
        self._scope = anyio.CancelScope()

    def base_of(self, call: Call) -> str:
        body = json.dumps(call.params, sort_keys=True, separators=(",", ":"), default=str)
        digest = hashlib.sha256(f"{self.settings}|{call.key}|{body}".encode())
        return digest.hexdigest()

    def stop(self) -> None:
        """Stop: submit nothing more, stop polling. Batches already created finish on the
        server and the next run collects them."""
        self.stopping = True
        self._scope.cancel()
        self._release()

    def _release(self) -> None:
        """Whoever waits on a call not ended is told it was not sent (this run)."""
        for pending in (*self._buffer, *self._waiting.values()):
            pending.ended.set()

    def totals(self) -> RunTotals:
        return self.counts.totals()

    @asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        """The key, the model and Message Batches themselves checked before anything is
        sent; then the loops that submit batches and collect their results."""
        if self.check:
            await check_endpoint(self.client, model=self.model, batches=True)
        async with anyio.create_task_group() as group:
            group.start_soon(self._loops)
            try:
                yield
            finally:
                group.cancel_scope.cancel()

    async def _loops(self) -> None:
        with self._scope:
            async with anyio.create_task_group() as group:
                group.start_soon(self._submit_loop)
                await self._poll_loop()

    async def submit(self, call: Call) -> CallResult:
        """Put the call in the next batch (or find it in one an earlier run created) and
        wait for its result; ``NotSent`` if the engine stops first."""
        if self.stopping:
            raise NotSent("the run is stopping")
        pending = self._arrive(call)
        await pending.ended.wait()
        if pending.result is None:
            raise NotSent("the run stopped before the call's batch ended")
        return pending.result

    # ---- calls in --------------------------------------------------------------------

    def _arrive(self, call: Call) -> _Pending:
        base = self.base_of(call)
        known = self.store.batch_item(base)
        self._last_arrival = self._clock()
        if known is not None:
            custom_id, batch_id, attempt = known
            pending = _Pending(call, base, attempt)
            if batch_id is not None:  # sent by an earlier run: collect it, do not pay again
                pending.record(batch_id, self._wall(), self._clock())
                self._waiting[custom_id] = pending
                self._batches.setdefault(batch_id, set()).add(custom_id)
                return pending
            log.warning(
                "a run stopped while submitting %s; it is sent again (it may have been "
                "submitted once already)",
                call.key,
            )
            pending.attempt += 1
            self._buffer.append(pending)
            return pending
        pending = _Pending(call, base, 1)
        self._buffer.append(pending)
        return pending

    # ---- submitting ------------------------------------------------------------------

    async def _submit_loop(self) -> None:
        while True:
            quiet = self._clock() - self._last_arrival >= self.gather_s
            if self._buffer and (quiet or len(self._buffer) >= self.max_requests):
                await self._submit(self._take())
                continue
            await self._sleep(min(self.gather_s, 0.5))

    def _take(self) -> list[_Pending]:
        """Requests for one batch, within its limits (the size of each as JSON)."""
        taken: list[_Pending] = []
        size = 0
        while self._buffer and len(taken) < self.max_requests:
            pending = self._buffer[0]
            body = json.dumps({"custom_id": pending.custom_id, "params": pending.call.params})
            if taken and size + len(body) > self.max_bytes:
                break
            size += len(body)
            taken.append(self._buffer.popleft())
        return taken

    async def _submit(self, taken: list[_Pending]) -> None:
        self.store.batch_submitting([(p.base, p.custom_id, p.attempt) for p in taken])
        requests = [{"custom_id": p.custom_id, "params": dict(p.call.params)} for p in taken]
        created_at = self._wall()
        batch = await self.client.create_batch(requests)
        batch_id = str(batch["id"])
        custom_ids = [p.custom_id for p in taken]
        self.store.batch_submitted(custom_ids, batch_id)
        self.counts.attempts += len(taken)
        now = self._clock()
        for pending in taken:
            pending.record(batch_id, created_at, now)
            self._waiting[pending.custom_id] = pending
        self._batches[batch_id] = set(custom_ids)
        log.info(
            "submitted batch %s: %d requests",
            batch_id,
            len(taken),
            extra={"event": "batch_submitted", "batch_id": batch_id, "requests": len(taken)},
        )

    # ---- results out -------------------------------------------------------------------

    async def _poll_loop(self) -> None:
        while True:
            ended = False
            for batch_id in list(self._batches):
                batch = await self.client.get_batch(batch_id)
                if batch.get("processing_status") == "ended":
                    self._collect(batch_id, await self._results(batch_id))
                    ended = True
            if not ended:
                await self._sleep(self.poll_s if self._batches else min(self.gather_s, 0.5))

    async def _results(self, batch_id: str) -> list[BatchResult]:
        awaited = self._batches[batch_id]
        return [r async for r in self.client.batch_results(batch_id) if r.custom_id in awaited]

    def _collect(self, batch_id: str, results: list[BatchResult]) -> None:
        awaited = self._batches.pop(batch_id)
        for result in results:
            if result.custom_id in awaited:
                awaited.discard(result.custom_id)
                self._settle(self._waiting.pop(result.custom_id), result)
        for lost in awaited:  # not in the results: send again
            pending = self._waiting.pop(lost)
            pending.settled(None, self._clock())
            error = self._retry_or_fail(pending, None)
            if error is not None:
                self._fail(pending, error)
        log.info("collected batch %s", batch_id, extra={"event": "batch_collected"})

    def _settle(self, pending: _Pending, result: BatchResult) -> None:
        pending.settled(result, self._clock())
        if result.reply is not None:
            reply = CallResult(pending.call, result.reply, None, tuple(pending.attempts))
            self._end(pending, reply)
            return
        kind = result.error.kind if result.error is not None else result.kind
        self.counts.errors[kind] += 1
        if result.error is not None and not is_retryable(result.error):
            self._fail(pending, result.error)
            return
        error = self._retry_or_fail(pending, result)
        if error is not None:
            self._fail(pending, error)

    def _end(self, pending: _Pending, result: CallResult) -> None:
        pending.result = self.counts.result(result)
        pending.ended.set()

    def _retry_or_fail(self, pending: _Pending, result: BatchResult | None) -> PipelineError | None:
        what = "missing from the results" if result is None else result.kind
        if pending.attempt < self.max_attempts:
            pending.attempt += 1
            self._buffer.append(pending)
            self._last_arrival = self._clock()
            return None
        return RetriesExhausted(
            f"Gave up after {pending.attempt} batches: the request came back {what}. Run "
            "again later to retry this document."
        )

    def _fail(self, pending: _Pending, error: PipelineError) -> None:
        self.store.batch_forget(pending.base)  # the next run sends it afresh
        self._end(pending, CallResult(pending.call, None, error, tuple(pending.attempts)))
