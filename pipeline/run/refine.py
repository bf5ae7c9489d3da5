"""The refine strategy (``chunking.strategy = "refine"``): a document's parts in order, each
request carrying the answer so far.

    part 1 with the job's template -> its answer -> part 2 with ``prompt.refine_template``
    ({answer}: the answer so far; {request}: the job's template for this part) -> ... ->
    the last part's answer is the document's

For ordered documents (books, transcripts, logs), where a part only makes sense after the
ones before it. The parts are asked one after another, so a document takes the sum of its
parts' times (``pipeline plan`` says so). Each part's budget leaves room for the answer so far
(``model.max_tokens``) and the refine template (``Job.chunk_budget``). A part the server
refuses is the document's error (it is not split again, as a map-reduce part would be).

Resume: every part but the last is kept in the state as it finishes, keyed by its request,
which holds the answer before it: a re-run finds the parts answered already, pays for none
of them, and goes on at the first unanswered one.
"""

from __future__ import annotations

from pipeline.config.spec import Job
from pipeline.core.models import Reply
from pipeline.run.context import Context, Part
from pipeline.run.conversation import NO_ANSWER, Failed
from pipeline.run.record import Ledger
from pipeline.shaping.planner import Unit
from pipeline.shaping.prompts import placeholders, render
from pipeline.shaping.tokens import estimate_text


def part_of(job: Job, ledger: Ledger, units: list[Unit], answer: str | None, n: int) -> Part:
    """The ``n``th part's request: the job's template for the first, the refine template
    with the answer so far for the others."""
    unit, final = units[n], n == len(units) - 1
    label = f"refine/{n}"
    if answer is None:
        return Part(label, unit, job.template, final)
    request = render(job.template, placeholders(ledger.document, unit.chunk, unit.text))
    values = (("answer", answer or NO_ANSWER), ("request", request))
    return Part(label, unit, job.spec.prompt.refine_template, final, values)


async def refine(
    ctx: Context, ledger: Ledger, key: str, units: list[Unit]
) -> tuple[Part, Reply] | Failed | None:
    """The document's answer, refined part after part: the last part and its reply. None if
    a part was not sent (the run is stopping): the next run goes on from the stored parts."""
    answer: str | None = None
    found: tuple[Part, Reply] | None = None
    for n in range(len(units)):
        part = part_of(ctx.job, ledger, units, answer, n)
        result = await ctx.ask(ledger, key, part)
        if result is None:
            ledger.unsent = True
            return None
        if result.reply is None:
            ledger.failed = True
            return Failed(part.label, result.error, {})
        if result.reply.stop_reason == "max_tokens":
            ledger.notes.append(f"{part.label}: the answer was cut at model.max_tokens")
        answer, found = result.reply.text, (part, result.reply)
    assert found is not None  # a document has at least one unit
    return found


def planned_overhead(job: Job) -> int:
    """The most a refine request after the first adds to its part's: the answer so far (at
    most ``max_tokens``) and the refine template's own words."""
    return job.spec.model.max_tokens + estimate_text(job.spec.prompt.refine_template)
