"""What the simulator saw, for tests and benchmarks (``GET /_simulator/stats``).

Peaks are measured over sliding windows of admitted work, so a test can check that what the
simulator let through never exceeded what its limits allow, and that a client paced itself.
"""

from __future__ import annotations

from collections import Counter, deque
from typing import Any

from pipeline.core.limits import Clock
from pipeline.simulator.cache import InputUsage

MAX_REFUSAL_TIMES = 10_000


class SlidingWindow:
    """Sum of amounts over the last ``seconds``; remembers the highest sum seen."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._events: deque[tuple[float, float]] = deque()
        self._sum = 0.0
        self.peak = 0.0

    def add(self, now: float, amount: float) -> None:
        events = self._events
        while events and events[0][0] <= now - self.seconds:
            self._sum -= events.popleft()[1]
        events.append((now, amount))
        self._sum += amount
        self.peak = max(self.peak, self._sum)


class Stats:
    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self.started = clock()
        self.by_status: Counter[int] = Counter()
        self.by_endpoint: Counter[str] = Counter()
        self.rate_limited: Counter[str] = Counter()
        self.rate_limited_at: list[float] = []
        self.faults: Counter[str] = Counter()
        self.served: Counter[str] = Counter()
        self.dropped: Counter[str] = Counter()
        self.input_tokens = 0
        self.output_tokens = 0
        self.cache: Counter[str] = Counter()
        self.batches: Counter[str] = Counter()
        self.batch_results: Counter[str] = Counter()
        self.batch_tokens: Counter[str] = Counter()
        self.concurrency = 0
        self.peak_concurrency = 0
        self.windows = {
            "requests_per_minute": SlidingWindow(60.0),
            "requests_per_second": SlidingWindow(1.0),
            "input_tokens_per_minute": SlidingWindow(60.0),
            "output_tokens_per_minute": SlidingWindow(60.0),
            "tokens_per_minute": SlidingWindow(60.0),
        }

    def response(self, endpoint: str, status: int) -> None:
        self.by_endpoint[endpoint] += 1
        self.by_status[status] += 1

    def refused(self, limit: str) -> None:
        self.rate_limited[limit] += 1
        if len(self.rate_limited_at) < MAX_REFUSAL_TIMES:
            self.rate_limited_at.append(round(self._clock() - self.started, 3))

    def admitted(self, input_tokens: int) -> None:
        now = self._clock()
        self.windows["requests_per_minute"].add(now, 1)
        self.windows["requests_per_second"].add(now, 1)
        self.windows["input_tokens_per_minute"].add(now, input_tokens)
        self.windows["tokens_per_minute"].add(now, input_tokens)
        self.concurrency += 1
        self.peak_concurrency = max(self.peak_concurrency, self.concurrency)

    def ended(self, output_tokens: int) -> None:
        self.concurrency -= 1
        if output_tokens:
            now = self._clock()
            self.windows["output_tokens_per_minute"].add(now, output_tokens)
            self.windows["tokens_per_minute"].add(now, output_tokens)

    def reply(self, digest: str, billed: InputUsage, output_tokens: int) -> None:
        """A complete reply was produced and billed (whether or not it reached the client)."""
        self.served[digest] += 1
        self.input_tokens += billed.input_tokens
        self.output_tokens += output_tokens
        self.cached(billed)

    def cached(self, billed: InputUsage) -> None:
        """Count what a billed reply read from and wrote to the prompt cache."""
        if billed.cache_read_input_tokens:
            self.cache["read_requests"] += 1
            self.cache["read_tokens"] += billed.cache_read_input_tokens
        if billed.cache_creation_input_tokens:
            self.cache["write_requests"] += 1
            self.cache["write_tokens"] += billed.cache_creation_input_tokens

    def as_dict(self) -> dict[str, Any]:
        return {
            "uptime_s": round(self._clock() - self.started, 3),
            "requests": sum(self.by_status.values()),
            "by_status": {str(k): v for k, v in sorted(self.by_status.items())},
            "by_endpoint": dict(self.by_endpoint),
            "rate_limited": dict(self.rate_limited),
            "rate_limited_at": list(self.rate_limited_at),
            "faults": dict(self.faults),
            "tokens": {"input": self.input_tokens, "output": self.output_tokens},
            "cache": {
                key: self.cache[key]
                for key in ("read_requests", "read_tokens", "write_requests", "write_tokens")
            },
            "peaks": {
                "concurrency": self.peak_concurrency,
                **{name: window.peak for name, window in self.windows.items()},
            },
            "batches": {
                **{
                    key: self.batches[key]
                    for key in ("created", "requests", "canceled", "deleted", "results_served")
                },
                "results_by_type": dict(self.batch_results),
                "tokens": {
                    key: self.batch_tokens[key]
                    for key in ("input", "output", "cache_creation", "cache_read")
                },
            },
            "in_flight": self.concurrency,
            "served": {
                "total": sum(self.served.values()),
                "distinct": len(self.served),
                "max_per_request": max(self.served.values(), default=0),
                "by_request": dict(self.served),
                "dropped_by_request": dict(self.dropped),
            },
        }
