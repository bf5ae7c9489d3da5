"""The job's ``[budget]``: a run stops before it would pass it, never after."""

from __future__ import annotations

from pipeline.models import Call
from pipeline.pricing import BATCH_DISCOUNT
from pipeline.report import Tally
from pipeline.spec import Job


class BudgetGuard:
    """Keeps a run within the job's ``[budget]``: a call is sent only if what was spent,
    plus the worst case of the calls in flight, plus this call's worst case (its estimated
    input at the dearer of the input and cache-write rates, and all of ``max_tokens``) stays
    within it. So the run stops before passing the budget, not after."""

    def __init__(self, job: Job, tally: Tally) -> None:
        budget = job.spec.budget
        self.max_cost, self.max_tokens = budget.max_cost_usd, budget.max_total_tokens
        self.price = job.price
        self.discount = BATCH_DISCOUNT if job.batch else 1.0
        self.tally = tally
        self._in_flight: dict[str, tuple[float, int]] = {}

    def _worst(self, call: Call) -> tuple[float, int]:
        cost = 0.0
        if self.price is not None:
            rate = max(self.price.input, self.price.cache_write)
            cost = (call.input_tokens * rate + call.max_tokens * self.price.output) / 1_000_000
            cost *= self.discount
        return cost, call.input_tokens + call.max_tokens

    def allows(self, call: Call) -> bool:
        cost, tokens = self._worst(call)
        cost += sum(c for c, _ in self._in_flight.values()) + self.tally.cost_usd
        usage = self.tally.usage
        tokens += sum(t for _, t in self._in_flight.values()) + usage.total
        if (self.max_cost is not None and cost > self.max_cost) or (
            self.max_tokens is not None and tokens > self.max_tokens
        ):
            return False
        self._in_flight[call.key] = self._worst(call)
        return True

    def settle(self, call: Call) -> None:
        self._in_flight.pop(call.key, None)

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
