"""Follow-up questions about a document, asked in the same conversation as its answer.

    the document's answer (its final request and reply) -> for each follow-up: the
    conversation so far, then the question as a user turn -> its answer -> ... -> the row

Each turn's answer is a column (``prompt.answer_column`` for the first, each follow-up's
``name``), and the last is the row's ``text`` (and its structured fields: only the last turn
asks for structured output). A document answered in several parts (map-reduce, refine) is
followed up after its combined answer: the conversation starts from the request that gave it.

Caching: the end of the conversation before each question (the first request's message, then
each answer) is marked for prompt caching when the request is long enough for the model's
minimum (``pipeline.shaping.prompts.history_cached``), so that every turn reads the one before
it at cache prices. (The last turn of a structured job adds its tool, which comes before the
messages: that turn reads nothing of the conversation from the cache.)

Resume: every turn but the last is kept in the state as it finishes (``Context.send``), keyed
by its request; a turn's request holds the answers before it, so a re-run finds the earlier
turns stored, pays for none of them, and goes on at the first unanswered one. A turn that
fails makes the document an error row that keeps the answers before it; the next run asks
that turn again, alone.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pipeline.config.spec import Job
from pipeline.config.turns import turn_columns
from pipeline.core.catalogue import cache_minimum
from pipeline.core.models import Reply, Usage
from pipeline.run.context import Context, Part
from pipeline.run.record import Ledger
from pipeline.shaping.planner import request_for
from pipeline.shaping.prompts import history_cached, placeholders, render, structured_tool
from pipeline.shaping.tokens import estimate_text

NO_ANSWER = "(no answer)"  # an empty answer in the history: the API refuses an empty block


@dataclass(frozen=True)
class Answered:
    """The conversation's end: the last turn's reply and every turn's answer by column."""

    reply: Reply
    columns: dict[str, str]


@dataclass(frozen=True)
class Failed:
    """A turn that ended in an error; ``columns``: the answers before it."""

    label: str
    error: object
    columns: dict[str, str]


async def follow_up(
    ctx: Context, ledger: Ledger, key: str, first: Part, reply: Reply
) -> Answered | Failed | None:
    """Ask the job's follow-ups after ``reply``, the answer ``first`` got. None if a turn was
    not sent (the run is stopping): the next run goes on from the stored turns."""
    job, document = ctx.job, ledger.document
    opening = request_for(
        job, document, first.unit, template=first.template, final=True, values=dict(first.values)
    )
    values = placeholders(document, None, "")
    if ledger.chunk_count > 1:
        ledger.notes.append(
            f"the follow-ups followed the combined answer of {ledger.chunk_count} parts "
            "(the document is too long to be asked about whole)"
        )
    names = turn_columns(job.spec.prompt.answer_column, job.spec.prompt.followups)
    messages: list[dict[str, Any]] = list(opening["messages"])
    answers = [reply]
    followups = job.spec.prompt.followups
    for n, followup in enumerate(followups, 1):
        messages.append({"role": "assistant", "content": answers[-1].text or NO_ANSWER})
        history = history_cached(job, {**opening, "messages": messages})
        question = {"role": "user", "content": render(followup.template, values)}
        params = {**history, "messages": [*history["messages"], question]}
        last = n == len(followups)
        if last:
            params = {**params, **structured_tool(job)}
        label = f"turn/{n}"
        result = await ctx.send(ledger, key, label, params, keep=not last)
        if result is None:
            ledger.unsent = True
            return None
        if result.reply is None:
            ledger.failed = True
            return Failed(label, result.error, _by_column(names, answers))
        if result.reply.stop_reason == "max_tokens":
            ledger.notes.append(f"{label}: the answer was cut at model.max_tokens")
        answers.append(result.reply)
        messages.append(question)
    return Answered(answers[-1], _by_column(names, answers))


def _by_column(names: tuple[str, ...], answers: list[Reply]) -> dict[str, str]:
    return {name: reply.text for name, reply in zip(names, answers, strict=False)}


def planned_usage(job: Job, opening: int) -> tuple[Usage, int]:
    """The most one document's follow-ups use, every answer at ``max_tokens``, after a first
    request of ``opening`` input tokens; and how many of those the first request writes to
    the cache (marked as history) rather than reads as plain input."""
    prompt, max_tokens = job.spec.prompt, job.spec.model.max_tokens
    minimum = cache_minimum(job.spec.model.name) if prompt.cache else None

    def marked(tokens: int) -> int:  # what a request marks for caching: its history
        return tokens if minimum is not None and tokens >= minimum else 0

    usage, history = Usage(), opening
    cached = marked(opening)
    for followup in prompt.followups:
        history += max_tokens  # the answer before this question
        total = history + estimate_text(followup.template)
        written = max(marked(history) - cached, 0)
        read = cached if marked(history) else 0  # a read needs a breakpoint to look back from
        usage = usage + Usage(total - read - written, max_tokens, written, read)
        cached, history = max(cached, marked(history)), total
    return usage, marked(opening)
