"""The simulator's state and decisions, apart from HTTP: who is let in, what fault they draw,
what they are charged. ``app.py`` turns these decisions into responses.

Order of checks for ``POST /v1/messages``, as the real API does it: authentication, then the
version header, then the body (size, JSON, validation, context window), then rate limits;
only an admitted request can draw a fault or be served. Faults that end a request before
the reply (529, 500, a slow reply the client gave up on) give its input tokens back; a
request counts against requests/min once admitted, whatever happens next.

Prompt caching (``cache.py``) is planned at admission: input tokens/min are charged
``input_tokens + cache_creation_input_tokens`` (cache reads are free of the limit, as on
current models), and the cache changes only once the reply is produced.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass

from pipeline.core.limits import Clock, TokenBucket
from pipeline.simulator import faults as fault_draw
from pipeline.simulator.batches import BatchStore
from pipeline.simulator.cache import CachePlan, InputUsage, PromptCache, cache_scope
from pipeline.simulator.config import FaultKind, SimulatorConfig
from pipeline.simulator.envelope import ApiError
from pipeline.simulator.ratelimit import RateLimiter
from pipeline.simulator.replies import Reply, make_reply, request_digest
from pipeline.simulator.stats import Stats
from pipeline.simulator.validation import MessagesRequest


@dataclass(frozen=True)
class Ticket:
    """An admitted request: what it asked, the reply it will get and the fault it drew."""

    request: MessagesRequest
    digest: str
    reply: Reply
    fault: FaultKind | None
    cache: CachePlan

    @property
    def billed(self) -> InputUsage:
        return self.cache.usage

    @property
    def limited_tokens(self) -> int:
        """Input tokens charged to the rate limits."""
        return self.cache.usage.rate_limited


class Simulator:
    def __init__(
        self,
        config: SimulatorConfig | None = None,
        *,
        clock: Clock = time.monotonic,
        wall: Clock = time.time,
    ) -> None:
        self.config = config or SimulatorConfig()
        self._clock = clock
        self._wall = wall
        self.reset()

    def reset(self) -> None:
        """Forget all traffic: fresh buckets, stats, fault history, prompt cache and batches."""
        config = self.config
        self.limiter = RateLimiter(
            config.limits,
            clock=self._clock,
            wall=self._wall,
            round_remaining=config.round_remaining,
        )
        count_rpm = config.count_tokens_requests_per_minute or config.limits.requests_per_minute
        self.count_bucket = (
            TokenBucket(count_rpm, per_second=config.limits.per_second, clock=self._clock)
            if count_rpm
            else None
        )
        self.stats = Stats(self._clock)
        self.cache = PromptCache(min_tokens=config.cache_min_tokens, token_scale=config.token_scale)
        self.batches = BatchStore(
            config, clock=self._clock, wall=self._wall, cache=self.cache, stats=self.stats
        )
        self._seen: Counter[str] = Counter()

    def authenticate(self, headers: Mapping[str, str]) -> str:
        """The caller's API key, once it is known to be one the simulator accepts."""
        key = headers.get("x-api-key")
        if key is None:
            auth = headers.get("authorization", "")
            key = auth[7:] if auth.lower().startswith("bearer ") else None
        if not key:
            raise ApiError(401, "authentication_error", "x-api-key header is required")
        if key not in self.config.api_keys:
            raise ApiError(401, "authentication_error", "invalid x-api-key")
        if not headers.get("anthropic-version"):
            raise ApiError(400, "invalid_request_error", "anthropic-version: header is required")
        return key

    def rate_limit_headers(self) -> dict[str, str]:
        return self.limiter.headers()

    def admit(self, request: MessagesRequest, *, api_key: str) -> Ticket:
        self.batches.settle()  # batches that ended meanwhile have used the cache first
        scope = cache_scope(api_key, request.model)
        plan = self.cache.plan(scope, request.body, now=self._clock())
        refusal = self.limiter.admit(plan.usage.rate_limited)
        if refusal is not None:
            self.stats.refused(refusal.limit)
            retry_after = max(1, int(-(-refusal.retry_after // 1)))
            raise ApiError(
                429,
                "rate_limit_error",
                refusal.message,
                {"retry-after": str(retry_after), "x-should-retry": "true"},
            )
        self.stats.admitted(plan.usage.rate_limited)
        digest = request_digest(request.body)
        attempt = self._seen[digest]
        self._seen[digest] += 1
        fault = fault_draw.draw(self.config.faults, digest, attempt, stream=request.stream)
        if fault is not None:
            self.stats.faults[fault] += 1
        reply = make_reply(request, digest, self.config.reply_tokens, self.config.tool_rounds)
        return Ticket(request, digest, reply, fault, plan)

    def served(self, ticket: Ticket) -> None:
        """The reply was produced in full and is billed, even if lost on the way out."""
        self.cache.commit(ticket.cache, now=self._clock())
        self.stats.reply(ticket.digest, ticket.billed, ticket.reply.output_tokens)
        if ticket.fault in ("drop", "truncated"):
            self.stats.dropped[ticket.digest] += 1

    def finish(self, ticket: Ticket, *, output_tokens: int, refund_input: bool) -> None:
        self.limiter.release(
            input_tokens=ticket.limited_tokens,
            output_tokens=output_tokens,
            refund_input=refund_input,
        )
        self.stats.ended(output_tokens)

    def admit_count(self) -> None:
        bucket = self.count_bucket
        if bucket is None:
            return
        wait = bucket.wait_for(1)
        if wait > 0:
            self.stats.refused("count_tokens_requests")
            raise ApiError(
                429,
                "rate_limit_error",
                f"This request would exceed your organization's rate limit of "
                f"{bucket.per_minute} count_tokens requests per minute.",
                {"retry-after": str(max(1, int(-(-wait // 1)))), "x-should-retry": "true"},
            )
        bucket.take(1)
