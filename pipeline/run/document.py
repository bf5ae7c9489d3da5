"""A document, start to end: one straight-line coroutine.

    first round (the planner's parts) -> await their answers (a part the server finds over
    the window is split in two and asked again) -> combine the partial answers, in groups
    that fit, until one is left -> the row(s)

Each part is a typed ``Part``; its label only names the call in the calls file. With
``per_chunk`` every chunk's answer is a row of its own. Another way to answer a document (a
conversation, a refine loop, a tool loop) is another coroutine of this shape: ask through
``Context.ask``, await, ask again.
"""

from __future__ import annotations

import logging
import time

import anyio

from pipeline.core.errors import InvalidRequest
from pipeline.core.models import Document, Reply, Section
from pipeline.run import conversation
from pipeline.run.context import Context, Part
from pipeline.run.conversation import Failed
from pipeline.run.record import Ledger
from pipeline.run.refine import refine
from pipeline.shaping.chunking import reduce_groups, split
from pipeline.shaping.planner import PART_HEADER_TOKENS, FirstRound, Unit, first_round
from pipeline.shaping.tokens import estimate_text
from pipeline.state.store import document_key

log = logging.getLogger("pipeline.run")

Answers = list[tuple[Part, Reply]]


async def answer(document: Document, ctx: Context, first: FirstRound | None = None) -> None:
    """Ask what the document needs, and keep its row(s): saved as finished if all are
    ``ok``, else as this run's output only. A document a stop interrupted leaves nothing
    but its finished calls (stored: the next run does not pay for them again). ``first``:
    its first round, planned where it was read (on a cluster); by default, planned here."""
    job = ctx.job
    first = first if first is not None else first_round(job, ctx.chunk_tokens, document)
    ledger = Ledger(document, first.chunk_count, time.time(), notes=list(first.notes))
    key = document_key(document.doc_id, ctx.settings)
    parts = [Part(unit.key, unit, job.template, first.final) for unit in first.units]
    if ctx.per_chunk:
        await _each_a_row(ctx, ledger, key, parts)
    elif job.spec.chunking.strategy == "refine" and not first.final:
        await _answered(ctx, ledger, key, await refine(ctx, ledger, key, first.units))
    else:
        await _combined(ctx, ledger, key, parts)
    keep(ctx, ledger, key)


def keep(ctx: Context, ledger: Ledger, key: str) -> None:
    """The document's row(s), counted and committed; nothing if a call was not sent."""
    if ledger.unsent:
        return
    rows = ledger.rows
    errors = [row.error_type for row in rows if row.status == "error"]
    ctx.tally.document([row.status for row in rows], next(iter(errors), None))
    rows.sort(key=lambda row: (row.source, row.chunk or 0))
    source = ledger.document.source
    if rows and all(row.status == "ok" for row in rows):
        ctx.store.save(key, source, rows, ledger.call_rows)
    else:
        ctx.store.add_other(source, rows, ledger.call_rows)


async def _combined(ctx: Context, ledger: Ledger, key: str, parts: list[Part]) -> None:
    """Map, then reduce until one answer is left: the document's one row."""
    answers = await _round(ctx, ledger, key, parts)
    level = 0
    while answers is not None:
        if len(answers) == 1 and answers[0][0].final:
            await _answered(ctx, ledger, key, answers[0])
            return
        texts = [reply.text for _, reply in answers]
        counts = [estimate_text(text) for text in texts]
        groups = reduce_groups(counts, ctx.chunk_tokens, overhead=PART_HEADER_TOKENS)
        final = len(groups) == 1
        level += 1
        template = ctx.job.spec.prompt.reduce_template
        parts = []
        for g, group in enumerate(groups):
            label = "final/0" if final else f"reduce/{level}/{g}"
            joined = "\n\n".join(f"--- Part {n} ---\n{texts[i]}" for n, i in enumerate(group, 1))
            parts.append(Part(label, Unit(label, joined), template, final))
        answers = await _round(ctx, ledger, key, parts)


async def _answered(
    ctx: Context, ledger: Ledger, key: str, found: tuple[Part, Reply] | Failed | None
) -> None:
    """The document's answer is ``found``: its row, after the job's follow-ups if it has
    any (``pipeline.run.conversation``)."""
    ended: conversation.Answered | Failed | None = None
    if isinstance(found, tuple):
        if not ctx.job.spec.prompt.followups:
            ok_row(ctx, ledger, found[1])
            return
        ended = await conversation.follow_up(ctx, ledger, key, *found)
    else:
        ended = found
    if isinstance(ended, conversation.Answered):
        ok_row(ctx, ledger, ended.reply, columns=ended.columns)
    elif isinstance(ended, Failed):
        error_row(ctx, ledger, ended.error, columns=ended.columns)


async def _round(ctx: Context, ledger: Ledger, key: str, parts: list[Part]) -> Answers | None:
    """Every part asked at once; their answers in the parts' order (a part split again
    gives its pieces' answers in its place). None if the document failed or was stopped."""
    answers: list[Answers | None] = [None] * len(parts)

    async def one(n: int, part: Part) -> None:
        answers[n] = await _part(ctx, ledger, key, part)

    if len(parts) == 1:
        await one(0, parts[0])  # most documents: one call, no task group to make
    else:
        async with anyio.create_task_group() as group:
            for n, part in enumerate(parts):
                group.start_soon(one, n, part)
    if ledger.failed or ledger.unsent:
        return None
    return [pair for found in answers if found is not None for pair in found]


async def _part(ctx: Context, ledger: Ledger, key: str, part: Part) -> Answers | None:
    result = await ctx.ask(ledger, key, part)
    if result is None:
        ledger.unsent = True
        return None
    if ledger.failed:
        return None  # another part failed: this document asks nothing more
    if result.reply is not None:
        if result.reply.stop_reason == "max_tokens":
            ledger.notes.append(f"{part.label}: the answer was cut at model.max_tokens")
        return [(part, result.reply)]
    error = result.error
    if isinstance(error, InvalidRequest) and (how := await ctx.over_window(result.call)):
        pieces = _split_again(ledger, part, how)
        if pieces:
            return await _round(ctx, ledger, key, pieces)
    if not ledger.failed:
        error_row(ctx, ledger, result.error)
        ledger.failed = True
    return None


def _split_again(ledger: Ledger, part: Part, how: str) -> list[Part]:
    """The server counted more tokens than our estimate: this part's text in two (or more),
    asked with the same template; their answers are combined as usual. Only text parts of
    a document answered as a whole can be split (not attachments, not ``per_chunk`` rows)."""
    unit = part.unit
    if unit.attachment is not None or not unit.text:
        return []
    pieces = split([Section(unit.text)], max(1_000, estimate_text(unit.text) // 2))
    if len(pieces) < 2:
        return []
    ledger.notes.append(f"{part.label} was over the window {how}: split in {len(pieces)}")
    labels = [f"{part.label}.{i}" for i in range(len(pieces))]
    return [
        Part(label, Unit(label, piece.text, piece), part.template, final=False)
        for label, piece in zip(labels, pieces, strict=True)
    ]


async def _each_a_row(ctx: Context, ledger: Ledger, key: str, parts: list[Part]) -> None:
    """``per_chunk``: every part's answer (or error) is a row of its own."""

    async def one(part: Part) -> None:
        result = await ctx.ask(ledger, key, part)
        chunk = part.unit.chunk.index + 1 if part.unit.chunk is not None else None
        if result is None:
            ledger.unsent = True
        elif result.reply is not None:
            if result.reply.stop_reason == "max_tokens":
                ledger.notes.append(f"{part.label}: the answer was cut at model.max_tokens")
            ok_row(ctx, ledger, result.reply, chunk=chunk)
        else:
            error_row(ctx, ledger, result.error, chunk=chunk)

    async with anyio.create_task_group() as group:
        for part in parts:
            group.start_soon(one, part)


def ok_row(
    ctx: Context,
    ledger: Ledger,
    reply: Reply,
    *,
    chunk: int | None = None,
    columns: dict[str, str] | None = None,
) -> None:
    ctx.rows.add(
        ledger,
        status="ok",
        text=reply.text,
        structured=reply.tool_input if ctx.job.spec.structured else None,
        model=reply.model,
        stop_reason=reply.stop_reason,
        chunk=chunk,
        turns=columns or {},
    )


def error_row(
    ctx: Context,
    ledger: Ledger,
    error: object,
    *,
    chunk: int | None = None,
    columns: dict[str, str] | None = None,
) -> None:
    message = f"{ledger.document.source}: {error}"
    if isinstance(error, InvalidRequest):
        message += " The request was refused as sent; check the job's prompt and model settings."
    kind = getattr(error, "kind", "error")
    log.warning(message, extra={"event": "document_failed", "error_type": kind})
    ctx.rows.add(
        ledger,
        status="error",
        error_type=kind,
        error_message=message,
        chunk=chunk,
        turns=columns or {},
    )
