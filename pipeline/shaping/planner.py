"""From a document to its first round of requests: shared by a run and by ``pipeline plan``.

A document becomes units (chunks of text that fit the window, or attachments); the job's
``chunking.strategy`` decides which are sent and whether their answers are final
(``per_chunk``, or a document that fits in one request) or partials to be combined
(``map_reduce``). Unit keys name the parts in results: ``whole``, ``map/N``, ``chunk/N``,
``part/N``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from pipeline.config.spec import Job
from pipeline.core.models import Attachment, Chunk, Document
from pipeline.shaping.chunking import split
from pipeline.shaping.prompts import (
    head_of,
    history_cached,
    placeholders,
    render,
    request_params,
)


@dataclass
class Unit:
    """One request's worth of a document: a chunk of text, or an attachment."""

    key: str
    text: str
    chunk: Chunk | None = None
    attachment: Attachment | None = None


@dataclass
class FirstRound:
    units: list[Unit]
    final: bool  # answers are the document's result; else partials to combine
    chunk_count: int  # before truncation
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Planned:
    """A document read with its first round planned already, where it was read (a Ray
    task on a cluster's node: the tokenizing of a big document is the CPU worth moving)."""

    document: Document
    first: FirstRound


PART_HEADER_TOKENS = 12  # "--- Part 12 ---" and the joiner, per partial answer in a reduce
# What {text} says for scanned pages (a PDF's pages without a text layer, sent as a document).
SCAN_TEXT = "(these pages have no text layer: they are attached above)"


def units_of(job: Job, budget: int, document: Document) -> list[Unit]:
    """The document's text in chunks that fit ``budget``, then its attachments (in attach
    mode, or the pages of a PDF without a text layer), one request each."""
    chunks = (
        split(
            document.sections,
            budget,
            overlap=job.spec.chunking.overlap_tokens,
            code=document.kind == "code",
        )
        if document.sections or not document.attachments
        else []
    )
    count = len(chunks) + len(document.attachments)
    units = [Unit(f"map/{c.index}", c.text, replace(c, count=count)) for c in chunks]
    text = SCAN_TEXT if document.scanned_pages else ""
    for i, attachment in enumerate(document.attachments):
        chunk = Chunk(len(chunks) + i, count, "", 0, attachment.pages)
        units.append(Unit(f"part/{i}", text, chunk, attachment))
    return units


def first_round(job: Job, budget: int, document: Document) -> FirstRound:
    units = units_of(job, budget, document)
    strategy = job.spec.chunking.strategy
    round_ = FirstRound(units, final=False, chunk_count=len(units))
    if strategy == "truncate" and len(units) > 1:
        kept = units[0]
        pages = (
            f" (pages {kept.chunk.pages[0]}-{kept.chunk.pages[1]})"
            if kept.chunk and kept.chunk.pages
            else ""
        )
        round_.notes.append(
            f"truncated: sent only the first of {len(units)} chunks{pages} "
            "(chunking.strategy = 'truncate')"
        )
        round_.units = [kept]
    if len(round_.units) == 1 or strategy == "per_chunk":
        for unit in round_.units:
            unit.key = unit.key.replace("map/", "chunk/") if strategy == "per_chunk" else "whole"
        round_.final = True
    return round_


def request_for(
    job: Job,
    document: Document,
    unit: Unit,
    *,
    template: str,
    final: bool,
    values: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """The request body for one unit of a document, rendered with ``template`` (and
    ``values``, placeholders of its own: a refine request's ``{answer}``). A job with
    follow-ups goes on in the same conversation after the final answer: that request asks
    for no structured output (the last turn does), and its message is marked for caching."""
    rendered = {**placeholders(document, unit.chunk, unit.text), **(values or {})}
    conversation = final and bool(job.spec.prompt.followups)
    params = request_params(
        job,
        render(template, rendered),
        head=head_of(template),
        attachment=unit.attachment,
        structured=final and job.spec.structured is not None and not conversation,
    )
    return history_cached(job, params) if conversation else params
