"""A file reviewed with tools: one more coroutine per document, a conversation.

    first request (the file, the tools, the answer tool) -> while the model calls tools: run
    them (in a worker thread, inside the input root), send their results -> its answer
    through the answer tool (asked for, forced, after a text reply or a bound) -> the row

The requests are ``pipeline.shaping.review``'s; the tools are ``pipeline.readers.tools``'s.
Every round is kept in the state as it finishes (``Context.send``), so a run killed in the
middle of a conversation resumes at its last completed round: the rounds before are read
back, their tool calls run again (the same files give the same results, so the same next
request), and nothing already answered is paid again. The row's tokens and cost are the
whole conversation's; its notes say how many tool calls it made. The calls file has a row
per round (``whole``, ``tools/1``, ..., ``answer``), each naming the tool calls its reply
made and their results. A file too big for one request is reviewed in parts without tools
(``document.answer``).
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any

import anyio

from pipeline.config.spec import Job
from pipeline.core.models import Document, Reply
from pipeline.readers.job import input_options
from pipeline.readers.tools import ToolBox, ToolResult
from pipeline.run.context import Context
from pipeline.run.document import answer, error_row, keep, ok_row
from pipeline.run.record import Ledger
from pipeline.shaping import review as rounds
from pipeline.shaping.planner import first_round, request_for
from pipeline.state.store import document_key

Results = list[tuple[rounds.ToolCall, ToolResult]]


def review_tools(job: Job) -> ToolBox | None:
    """The job's tools (``review.tools``), or None: its index is built on the first call."""
    review = job.spec.review
    if not review.tools:
        return None
    return ToolBox(
        input_options(job), output_chars=review.tool_output_chars, enabled=tuple(review.tools)
    )


async def reviewed(document: Document, ctx: Context) -> None:
    """The document's review, with tools when it fits one request."""
    job, tools = ctx.job, ctx.tools
    first = first_round(job, ctx.chunk_tokens, document)
    if tools is None or len(first.units) != 1 or not first.final:
        await answer(document, ctx)
        return
    ledger = Ledger(document, first.chunk_count, time.time(), notes=list(first.notes))
    key = document_key(document.doc_id, ctx.settings)
    params = request_for(job, document, first.units[0], template=job.template, final=True)
    conversation = _Conversation(ctx, tools, ledger, key)
    reply = await conversation.run(rounds.with_tools(job, params, tools.schemas))
    if reply is not None:
        ledger.notes.append(conversation.summary())
        if reply.stop_reason == "max_tokens":
            ledger.notes.append("the answer was cut at model.max_tokens")
        ok_row(ctx, ledger, _answer_only(ctx, reply))
    keep(ctx, ledger, key)


def _answer_only(ctx: Context, reply: Reply) -> Reply:
    """The reply with its text and the answer tool's call (not a helper called alongside)."""
    name = rounds.answer_tool(ctx.job)
    content = tuple(
        b for b in reply.content if b.get("type") != "tool_use" or b.get("name") == name
    )
    return dataclasses.replace(reply, content=content)


@dataclasses.dataclass
class _Conversation:
    ctx: Context
    tools: ToolBox
    ledger: Ledger
    key: str
    rounds: int = 0  # replies that called tools
    made: int = 0  # tool calls run
    refused: int = 0  # tool calls past the allowance, answered with an error
    used: int = 0  # tokens of every round so far
    why: str = ""  # why the answer was asked for, if it was

    async def run(self, params: dict[str, Any]) -> Reply | None:
        """Round after round until the answer: the reply that holds it, or None (the row is
        an error, or a call was not sent)."""
        label, forced = "whole", False
        job = self.ctx.job
        while True:
            result = await self.ctx.send(self.ledger, self.key, label, params, keep=True)
            if result is None:
                self.ledger.unsent = True
                return None
            if result.reply is None:
                error_row(self.ctx, self.ledger, result.error)
                return None
            reply = result.reply
            self.used += reply.usage.total
            step = rounds.decide(job, reply, self.made)
            if step == "answer" or forced:
                return reply
            results, all_ran = await self._tools(reply, step)
            self._record(label, results)
            self.rounds += bool(results)
            forced = step == "final" or not all_ran
            if forced and not results:
                self.why = "it answered in text"
            following = rounds.next_request(job, params, reply, results, final=forced)
            if not forced and rounds.over_budget(job, following, self.used):
                self.why = f"review.token_budget ({job.spec.review.token_budget:,}) reached"
                forced = True
                following = rounds.next_request(job, params, reply, results, final=True)
            params, label = following, "answer" if forced else f"tools/{self.rounds}"

    async def _tools(self, reply: Reply, step: str) -> tuple[Results, bool]:
        """Run the calls the allowance lets run, in a worker thread; refuse the rest. Did
        they all run?"""
        job = self.ctx.job
        calls = rounds.tool_calls(reply)
        runs = rounds.allowed(job, calls, self.made) if step == "tools" else 0
        results: Results = []
        for call in calls[:runs]:
            found = await anyio.to_thread.run_sync(self.tools.call, call.name, call.input)
            results.append((call, found))
        self.made += runs
        if calls[runs:]:
            self.refused += len(calls) - runs
            self.why = f"review.max_tool_calls ({job.spec.review.max_tool_calls}) reached"
        results += [(call, rounds.refused(job)) for call in calls[runs:]]
        return results, runs == len(calls)

    def _record(self, label: str, results: Results) -> None:
        """The round's tool calls and results on its answered row of the calls file."""
        rows = self.ledger.call_rows
        for n, row in enumerate(rows):
            if row.call == label and row.status == 200:
                rows[n] = dataclasses.replace(
                    row,
                    tool_calls=tuple(rounds.described(c, r) for c, r in results),
                    tool_results=tuple(r.text for _, r in results),
                )

    def summary(self) -> str:
        calls = f"{self.made} tool call{'' if self.made == 1 else 's'}"
        refused = f", {self.refused} refused" if self.refused else ""
        why = f"; answer asked for: {self.why}" if self.why else ""
        return f"review: {calls}{refused}{why}"
