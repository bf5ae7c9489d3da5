"""What a document's coroutine asks through: one call at a time, resumed, budgeted, counted.

``Context.ask`` is the one way a document makes a call: a reply an earlier run stored for
the same request is used without paying again; otherwise the job's budget is checked and
the call goes to the engine. Every result is accounted in the document's ``Ledger`` and in
the run's ``Tally``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pipeline.config.spec import Job
from pipeline.core.errors import NotOffered, NotSent, PipelineError
from pipeline.core.models import Call, CallResult, Usage
from pipeline.engine.base import Engine
from pipeline.engine.client import MessagesClient
from pipeline.output.report import Tally
from pipeline.run.budget import BudgetGuard
from pipeline.run.record import Ledger, Rows
from pipeline.shaping.planner import Unit, request_for
from pipeline.shaping.request_tokens import estimate_request
from pipeline.state.calls import decode, encode, request_hash
from pipeline.state.store import ResultStore

if TYPE_CHECKING:
    from pipeline.readers.tools import ToolBox

log = logging.getLogger("pipeline.run")


@dataclass(frozen=True)
class Part:
    """One call of a document: ``label`` names it in the calls file ("whole", "map/3",
    "whole.0", "reduce/1/0", "final/0"), never read back; ``final``: its answer is the
    document's (else a partial answer, to be combined)."""

    label: str
    unit: Unit
    template: str
    final: bool
    values: tuple[tuple[str, str], ...] = ()  # placeholders of its own: refine's {answer}


@dataclass
class Context:
    """The run as a document sees it."""

    job: Job
    engine: Engine
    client: MessagesClient  # count_tokens: is a refused request over the window?
    store: ResultStore
    tally: Tally
    rows: Rows
    budget: BudgetGuard
    settings: str  # the hash of the settings that shape an answer
    chunk_tokens: int  # the job's chunk budget
    stop: Callable[[str], None]  # stop the run (the budget is reached)
    stopping: Callable[[], bool]
    reused_calls: int = 0  # calls answered by an earlier run's stored reply
    tools: ToolBox | None = None  # review.tools: what the model may call (``run.review``)
    _no_count_tokens: bool = field(default=False, repr=False)

    @property
    def per_chunk(self) -> bool:
        return self.job.spec.chunking.strategy == "per_chunk"

    async def ask(self, ledger: Ledger, key: str, part: Part) -> CallResult | None:
        """The part's call (its request rendered from the part's unit and template), made or
        found stored; None if it was not sent (the run is stopping, or the budget would be
        passed)."""
        params = request_for(
            self.job,
            ledger.document,
            part.unit,
            template=part.template,
            final=part.final,
            values=dict(part.values),
        )
        # a conversation goes on after the final answer: its turns are kept too
        keep = not part.final or self.per_chunk or bool(self.job.spec.prompt.followups)
        return await self.send(ledger, key, part.label, params, keep=keep)

    async def send(
        self,
        ledger: Ledger,
        key: str,
        label: str,
        params: Mapping[str, Any],
        *,
        keep: bool = True,
    ) -> CallResult | None:
        """One request of the document ``key``, named ``label`` in the calls file: an
        earlier run's stored reply to the same request, or the engine's result (kept in the
        state if ``keep``, for a run that stops before the document ends); None if it was
        not sent. Another way to answer a document (a conversation, a tool loop) builds its
        own requests and sends them here."""
        call = Call(
            f"{ledger.document.doc_id}|{label}", params, input_tokens=estimate_request(params)
        )
        request = request_hash(params)
        stored = self.store.stored_call(key, request)
        if stored is not None:
            reply, attempts = decode(*stored)
            self.reused_calls += 1
            result = CallResult(call, reply, None, attempts)
            ledger.account(label, result)  # the answer's cost, not this run's spend
            return result
        if self.stopping():
            return None
        if not self.budget.allows(call):
            log.warning(
                "%s; stopping: no new requests, the ones in flight finish",
                self.budget.describe(),
                extra={"event": "budget_reached"},
            )
            self.stop("budget")
            return None
        try:
            result = await self.engine.submit(call)
        except NotSent:
            self.budget.settle(call)
            return None
        self._settle(ledger, label, result)
        if result.reply is not None and keep:
            self.store.keep_call(key, request, *encode(result.reply, result.attempts))
        return result

    def _settle(self, ledger: Ledger, label: str, result: CallResult) -> None:
        ledger.account(label, result)
        usage = result.reply.usage if result.reply is not None else Usage()
        self.budget.settle(result.call)
        self.tally.call(result, self.rows.cost(usage) or 0.0)

    async def over_window(self, call: Call) -> str | None:
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
