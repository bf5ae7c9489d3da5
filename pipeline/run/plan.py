"""``pipeline plan``: what a run would send, cost and take, with nothing sent.

The documents are found and read exactly as a run reads them, split by the same planner,
and each first-round request is built in full; its input is estimated the way the run
reserves it (``pipeline.shaping.tokens``: an upper bound, about 10-50% over the API's count) or,
with ``exact``, counted by ``/v1/messages/count_tokens`` (free). Documents an earlier run
finished are left out, as the run would. Map-reduce documents add combining requests whose
input is bounded by their parts' ``max_tokens``; refine parts carry the answer so far (at most
``max_tokens``), one after another; follow-up questions (``pipeline.run.conversation``) re-read
the conversation, at cache prices where it is long enough to be cached. Output is bounded
by ``max_tokens`` per request: the plan gives upper bounds for output, cost and tokens, and
the least time the tier's limits allow (and a document's calls in sequence).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import anyio

from pipeline.config.spec import Job
from pipeline.core.defaults import CONCURRENCY
from pipeline.core.errors import InputProblem, NotOffered
from pipeline.core.limits import Limits
from pipeline.core.models import Document, Usage
from pipeline.core.pricing import Price
from pipeline.engine.client import MessagesClient
from pipeline.readers import Candidate
from pipeline.readers.job import input_options
from pipeline.readers.sources import find, read_items
from pipeline.run import conversation, refine
from pipeline.run.review_plan import ReviewPlan, review_plan
from pipeline.shaping.planner import PART_HEADER_TOKENS, first_round, request_for
from pipeline.shaping.prompts import cached_prefix_tokens
from pipeline.shaping.request_tokens import estimate_request
from pipeline.shaping.tokens import estimate_text
from pipeline.state.store import document_key, finished_keys, settings_hash

# For the concurrency bound only: a reply's time if it runs to max_tokens.
ASSUMED_TOKENS_PER_S = 50.0
ASSUMED_OVERHEAD_S = 1.0


@dataclass
class Plan:
    job: str
    model: str
    documents: int = 0  # to send
    reused: int = 0  # finished by an earlier run
    problems: Counter[str] = field(default_factory=Counter)  # not sendable, by kind
    chunks: int = 0
    requests: int = 0  # first round
    combining: int = 0  # map-reduce requests that combine partial answers
    input_tokens: int = 0  # first round: estimated (or exact)
    combining_input_max: int = 0  # combining requests: if every part ran to max_tokens
    cached_prefix_tokens: int = 0  # the shared prefix, per request, if it is cached
    exact: bool = False
    max_tokens: int = 0
    scans: int = 0  # documents without a text layer, sent as documents (inputs.scans)
    scan_pages: int = 0
    scan_input_tokens: int = 0  # their share of input_tokens (estimated)
    price_basis: str = "list price"  # where the price comes from (``Job.price_basis``)
    count_tokens_missing: bool = False  # --exact, but the endpoint has no count_tokens
    followups: int = 0  # requests of follow-up questions (prompt.followups)
    followup_usage: Usage = field(default_factory=Usage)  # theirs, at most (output aside)
    opening_cached: int = 0  # first-turn input written to the cache as conversation history
    refine_carried_max: int = 0  # refine: the answers so far that later parts carry, at most
    longest_sequence: int = 1  # calls one document makes one after another (refine, turns)
    review: ReviewPlan = field(default_factory=ReviewPlan)  # [review]: the map, the tools

    @property
    def all_requests(self) -> int:
        return self.requests + self.combining + self.followups

    @property
    def output_tokens_max(self) -> int:
        return self.all_requests * self.max_tokens

    def usage_max(self) -> Usage:
        """The most this run can use: cache writes once, reads for the rest."""
        cached = self.cached_prefix_tokens
        total_input = self.input_tokens + self.combining_input_max + self.refine_carried_max
        turns = self.followup_usage
        conversation = Usage(
            turns.input_tokens - self.opening_cached,
            0,
            turns.cache_creation_input_tokens + self.opening_cached,
            turns.cache_read_input_tokens,
        )
        if not cached or not self.requests:
            return Usage(total_input, self.output_tokens_max) + conversation
        reads = cached * (self.requests - 1)
        first_round = Usage(
            input_tokens=total_input - reads - cached,
            output_tokens=self.output_tokens_max,
            cache_creation_input_tokens=cached,
            cache_read_input_tokens=reads,
        )
        return first_round + conversation

    def least_time(self, limits: Limits) -> tuple[float, str]:
        """Seconds the tier's limits allow at best, and the limit that binds."""
        usage = self.usage_max()
        counted_input = usage.counted_input
        per_reply = ASSUMED_OVERHEAD_S + self.max_tokens / ASSUMED_TOKENS_PER_S
        bounds = {
            "requests per minute": (self.all_requests, limits.requests_per_minute),
            "input tokens per minute": (counted_input, limits.input_tokens_per_minute),
            "output tokens per minute": (usage.output_tokens, limits.output_tokens_per_minute),
            "tokens per minute": (
                counted_input + usage.output_tokens,
                limits.tokens_per_minute,
            ),
        }
        times = {name: 60 * need / limit for name, (need, limit) in bounds.items() if limit}
        concurrency = limits.max_concurrency or CONCURRENCY
        times["concurrency"] = self.all_requests * per_reply / concurrency
        if self.followups or self.refine_carried_max:  # a document's calls in sequence
            times["sequence"] = self.longest_sequence * per_reply
        binding = max(times, key=lambda name: times[name])
        return times[binding], binding


def _documents(job: Job) -> Iterator[Document | InputProblem]:
    options = input_options(job)
    for item in find(options):
        if isinstance(item, Candidate):
            yield from read_items(item, options)
        else:
            yield item


def make_plan(job: Job, *, counter: MessagesClient | None = None) -> Plan:
    """The plan for ``job``; with ``counter``, input tokens counted by the API."""
    spec = job.spec
    plan = Plan(job.name, spec.model.name, exact=counter is not None)
    plan.max_tokens = spec.model.max_tokens
    plan.price_basis = job.price_basis
    budget = job.chunk_budget(estimate_text)
    settings = settings_hash(job.answer_settings())
    finished = finished_keys(job.state_path)
    requests: list[dict[str, Any]] = []
    for item in _documents(job):
        if isinstance(item, InputProblem):
            plan.problems[item.kind] += 1
            continue
        if document_key(item.doc_id, settings) in finished:
            plan.reused += 1
            continue
        plan.documents += 1
        first = first_round(job, budget, item)
        plan.chunks += first.chunk_count
        if item.scanned_pages:
            plan.scans += 1
            plan.scan_pages += item.scanned_pages
        for unit in first.units:
            params = request_for(job, item, unit, template=job.template, final=first.final)
            plan.requests += 1
            estimated = estimate_request(params)
            plan.input_tokens += estimated
            if item.scanned_pages:
                plan.scan_input_tokens += estimated
            if counter is not None:
                requests.append(params)
        _after_first_round(plan, job, len(first.units), estimated, budget)
    if counter is not None:  # combining requests cannot be counted before their parts exist
        try:
            plan.input_tokens = anyio.run(_count, counter, requests)
        except NotOffered:  # a gateway without count_tokens: the estimates stand
            plan.exact, plan.count_tokens_missing = False, True
    plan.cached_prefix_tokens = cached_prefix_tokens(job)
    plan.review = review_plan(job, plan.requests, cached=plan.cached_prefix_tokens > 0)
    return plan


def _after_first_round(plan: Plan, job: Job, parts: int, last: int, budget: int) -> None:
    """What a document asks after its first round (``last``: the input of its last request
    there): combining requests, or refine's answers so far; then its follow-ups."""
    opening, sequence = last, 1
    if parts > 1 and job.spec.chunking.strategy == "refine":
        plan.refine_carried_max += (parts - 1) * refine.planned_overhead(job)
        opening, sequence = last + refine.planned_overhead(job), parts
    elif parts > 1:
        combining, tokens = _combining(job, parts, budget)
        plan.combining += combining
        plan.combining_input_max += tokens
        per_request = max(2, budget // (job.spec.model.max_tokens + PART_HEADER_TOKENS))
        opening = min(parts, per_request) * (job.spec.model.max_tokens + PART_HEADER_TOKENS)
        sequence = 2
    followups = job.spec.prompt.followups
    if followups:
        usage, written = conversation.planned_usage(job, opening)
        plan.followups += len(followups)
        plan.followup_usage = plan.followup_usage + usage
        plan.opening_cached += written
    plan.longest_sequence = max(plan.longest_sequence, sequence + len(followups))


def _combining(job: Job, parts: int, budget: int) -> tuple[int, int]:
    """Requests and input tokens to combine ``parts`` partial answers of at most
    ``max_tokens`` each, in groups that fit the window, round after round."""
    max_tokens = job.spec.model.max_tokens
    prompt = estimate_text(job.spec.prompt.reduce_template) + estimate_text(job.spec.prompt.system)
    per_request = max(2, budget // (max_tokens + PART_HEADER_TOKENS))
    requests = tokens = 0
    while parts > 1:
        groups = math.ceil(parts / per_request)
        requests += groups
        tokens += parts * (max_tokens + PART_HEADER_TOKENS) + groups * prompt
        parts = groups
    return requests, tokens


async def _count(client: MessagesClient, requests: list[dict[str, Any]]) -> int:
    if not requests:
        return 0
    total = 0
    slots = anyio.Semaphore(4)

    async def one(params: dict[str, Any]) -> None:
        nonlocal total
        async with slots:
            counted = await client.count_tokens(params)
        total += counted  # not ``total += await ...``: that reads total before the await

    async with client:
        await one(requests[0])  # alone first: a server without count_tokens says so once
        async with anyio.create_task_group() as group:
            for params in requests[1:]:
                group.start_soon(one, params)
    return total


def render(plan: Plan, price: Price | None, limits: Limits) -> str:
    """The plan as a person reads it."""
    problems = ", ".join(f"{n:,} {kind}" for kind, n in plan.problems.most_common())
    lines = [f"Plan for {plan.job} ({plan.model}); nothing was sent."]
    line = f"  documents  {plan.documents:,} to send"
    if plan.reused:
        line += f"; {plan.reused:,} finished by an earlier run, not sent again"
    if problems:
        line += f"; {problems} (not sendable: rows will say why)"
    lines.append(line)
    combining = f" + {plan.combining:,} combining partial answers" if plan.combining else ""
    if plan.followups:
        combining += f" + {plan.followups:,} follow-up questions (prompt.followups)"
    lines.append(f"  requests   {plan.requests:,} ({plan.chunks:,} chunks){combining}")
    how = "counted by the API" if plan.exact else "estimated, usually 10-50% over the API's count"
    if plan.count_tokens_missing:
        how += "; the endpoint has no count_tokens"
    lines.append(f"  input      {plan.input_tokens:,} tokens ({how})")
    if plan.combining:
        lines.append(
            f"{'':13}+ up to {plan.combining_input_max:,} tokens of partial answers to combine"
        )
    lines.extend(_carried(plan))
    if plan.scans:
        priced = (
            f", about ${plan.scan_input_tokens * price.input / 1_000_000:,.4f} of input"
            if price is not None
            else ""
        )
        lines.append(
            f"  scans      {plan.scans:,} PDFs without a text layer, {plan.scan_pages:,} pages "
            f"sent as documents (inputs.scans): ~{plan.scan_input_tokens:,} of the input "
            f"tokens{priced}"
        )
    if plan.cached_prefix_tokens:
        lines.append(
            f"  cached     a shared prefix of ~{plan.cached_prefix_tokens:,} tokens: written "
            "once, then read at a tenth of the input price"
        )
    lines.extend(plan.review.lines())
    lines.append(
        f"  output     up to {plan.output_tokens_max:,} tokens "
        f"({plan.all_requests:,} requests x model.max_tokens {plan.max_tokens:,})"
    )
    lines.extend(_cost_and_time(plan, price, limits))
    return "\n".join(lines)


def _carried(plan: Plan) -> list[str]:
    """The input lines of refine's answers so far and of the follow-ups' conversation."""
    lines = []
    if plan.refine_carried_max:
        lines.append(
            f"{'':13}+ up to {plan.refine_carried_max:,} tokens of answers so far (refine: "
            "each part after the first carries the answer before it)"
        )
    if plan.followups:
        turns = plan.followup_usage
        lines.append(
            f"{'':13}+ up to {turns.input_tokens + turns.cache_creation_input_tokens:,} tokens "
            f"of conversation for the follow-ups, {turns.cache_read_input_tokens:,} more "
            "re-read from the cache"
        )
    return lines


def _cost_and_time(plan: Plan, price: Price | None, limits: Limits) -> list[str]:
    """The plan's last lines: the most it can cost, and the least time it can take."""
    lines = []
    usage = plan.usage_max()
    if price is None:
        lines.append("  cost       unknown: no price for this model (set [pricing])")
    else:
        output_cost = usage.output_tokens * price.output / 1_000_000
        lines.append(
            f"  cost       up to ${price.cost(usage):,.4f} at the {plan.price_basis} "
            f"(input ${price.cost(usage) - output_cost:,.4f}, output up to ${output_cost:,.4f}); "
            f"${price.cost(usage, batch=True):,.4f} through Message Batches"
        )
    seconds, binding = plan.least_time(limits)
    if binding == "sequence":
        lines.append(
            f"  time       about {_duration(seconds)}: a document's {plan.longest_sequence:,} "
            "calls go one after another (refine parts, follow-ups), each at up to max_tokens"
        )
    elif binding == "concurrency":
        at_once = limits.max_concurrency or CONCURRENCY
        lines.append(
            f"  time       about {_duration(seconds)} if every reply runs to max_tokens at "
            f"~{ASSUMED_TOKENS_PER_S:.0f} tokens/s ({at_once} at a time); "
            "no per-minute limit binds"
        )
    else:
        lines.append(f"  time       at least {_duration(seconds)}: the tier's {binding} binds")
    return lines


def as_dict(plan: Plan, price: Price | None, limits: Limits) -> dict[str, Any]:
    usage = plan.usage_max()
    seconds, binding = plan.least_time(limits)
    return {
        "job": plan.job,
        "model": plan.model,
        "documents": plan.documents,
        "reused": plan.reused,
        "problems": dict(plan.problems),
        "chunks": plan.chunks,
        "requests": plan.requests,
        "combining_requests": plan.combining,
        "input_tokens": plan.input_tokens,
        "input_exact": plan.exact,
        "combining_input_tokens_max": plan.combining_input_max,
        "cached_prefix_tokens": plan.cached_prefix_tokens,
        "followup_requests": plan.followups,
        "refine_carried_input_tokens_max": plan.refine_carried_max,
        "longest_sequence": plan.longest_sequence,
        "review": plan.review.as_dict(),
        "scans": {
            "documents": plan.scans,
            "pages": plan.scan_pages,
            "input_tokens": plan.scan_input_tokens,
            "input_cost_usd": None
            if price is None
            else round(plan.scan_input_tokens * price.input / 1_000_000, 6),
        },
        "output_tokens_max": plan.output_tokens_max,
        "cost_usd_max": None if price is None else round(price.cost(usage), 6),
        "price_basis": None if price is None else plan.price_basis,
        "cost_usd_max_batch": None if price is None else round(price.cost(usage, batch=True), 6),
        "least_time_s": round(seconds, 1),
        "binding_limit": binding,
    }


def _duration(seconds: float) -> str:
    whole = math.ceil(seconds)
    hours, rest = divmod(whole, 3600)
    return f"{hours}h{rest // 60:02d}m" if hours else f"{rest // 60}m{rest % 60:02d}s"
