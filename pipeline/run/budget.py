"""The job's ``[budget]``: a run stops before it would pass it, never after."""

from __future__ import annotations

from pipeline.config.spec import Job
from pipeline.core.models import Call, Usage
from pipeline.output.report import Tally


class BudgetGuard:
    """Keeps a run within the job's ``[budget]``: a call is sent only if what was spent,
    plus the worst case of the calls in flight, plus this call's worst case (its estimated
    input at the dearer of the input and cache-write rates, and all of ``max_tokens``) stays
    within it. So the run stops before passing the budget, not after."""

    def __init__(self, job: Job, tally: Tally) -> None:
        budget = job.spec.budget
        self.max_cost, self.max_tokens = budget.max_cost_usd, budget.max_total_tokens
        self.price = job.price
        self.batch = job.batch
        self.tally = tally
        self._in_flight: dict[str, tuple[float, int]] = {}
        # Sums over ``_in_flight``, kept as calls come and go: in batch mode thousands are
        # in flight at once, and each new call is checked against all of them.
        self._in_flight_cost = 0.0
        self._in_flight_tokens = 0

    def _worst(self, call: Call) -> tuple[float, int]:
        cost = 0.0
        if self.price is not None:
            # Its input at the dearer of the plain and the cache-write rates, all of max_tokens.
            n, m = call.input_tokens, call.max_tokens
            cost = max(
                self.price.cost(Usage(input_tokens=n, output_tokens=m), batch=self.batch),
                self.price.cost(
                    Usage(cache_creation_input_tokens=n, output_tokens=m), batch=self.batch
                ),
            )
        return cost, call.input_tokens + call.max_tokens

    def allows(self, call: Call) -> bool:
        cost, tokens = self._worst(call)
        over_cost = self.max_cost is not None and (
            self.tally.cost_usd + self._in_flight_cost + cost > self.max_cost
        )
        over_tokens = self.max_tokens is not None and (
            self.tally.usage.total + self._in_flight_tokens + tokens > self.max_tokens
        )
        if over_cost or over_tokens:
            return False
        self._in_flight[call.key] = (cost, tokens)
        self._in_flight_cost += cost
        self._in_flight_tokens += tokens
        return True

    def settle(self, call: Call) -> None:
        cost, tokens = self._in_flight.pop(call.key, (0.0, 0))
        self._in_flight_cost = self._in_flight_cost - cost if self._in_flight else 0.0
        self._in_flight_tokens -= tokens

    def describe(self) -> str:
        limits = []
        if self.max_cost is not None:
            limits.append(
                f"budget.max_cost_usd ${self.max_cost:,.2f} (spent ${self.tally.cost_usd:,.4f})"
            )
        if self.max_tokens is not None:
            limits.append(
                f"budget.max_total_tokens {self.max_tokens:,} (used {self.tally.usage.total:,})"
            )
        return "the next request could pass " + " or ".join(limits)
