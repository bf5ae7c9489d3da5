"""What ``pipeline plan`` says of a repository review (``[review]``): the map's tokens and what
caching saves on it, and the most the tool rounds may add to the first requests' figures."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pipeline.config.spec import Job
from pipeline.core.models import Usage
from pipeline.shaping.repomap import map_for


@dataclass(frozen=True)
class ReviewPlan:
    map_tokens: int = 0
    map_files: int = 0
    map_listed: int = 0
    map_detail: str = ""
    map_saving_usd: float | None = None  # against sending the map uncached in every request
    max_tool_calls: int = 0  # per file; 0: no tools
    token_budget: int = 0  # per file
    budget_cost_usd: float | None = None  # every file at its token budget, all as input

    def lines(self) -> list[str]:
        out = []
        if self.map_tokens:
            saving = (
                f"; caching saves ~${self.map_saving_usd:,.4f} on it" if self.map_saving_usd else ""
            )
            listed = "" if self.map_listed == self.map_files else f" ({self.map_listed} listed)"
            out.append(
                f"  map        {self.map_files:,} files{listed}, {self.map_detail}: "
                f"~{self.map_tokens:,} tokens in every request's system prompt{saving}"
            )
        if self.max_tool_calls:
            cost = f", up to ${self.budget_cost_usd:,.4f} in all" if self.budget_cost_usd else ""
            out.append(
                f"  tools      up to {self.max_tool_calls} calls and {self.token_budget:,} "
                f"tokens a file (review.max_tool_calls, review.token_budget){cost}; the "
                "figures below are each file's first request"
            )
        return out

    def as_dict(self) -> dict[str, Any]:
        return {
            "map_tokens": self.map_tokens,
            "map_files": self.map_files,
            "map_saving_usd": self.map_saving_usd,
            "max_tool_calls": self.max_tool_calls,
            "token_budget": self.token_budget,
            "budget_cost_usd": self.budget_cost_usd,
        }


def review_plan(job: Job, requests: int, cached: bool) -> ReviewPlan:
    """The review's part of the plan for ``requests`` first requests; ``cached``: is the
    shared prefix (with the map) marked for caching?"""
    review, price = job.spec.review, job.price
    found = map_for(job)
    saving = None
    if found is not None and price is not None and cached and requests > 1:
        plain = price.cost(Usage(input_tokens=found.tokens * requests))
        reads = Usage(
            cache_creation_input_tokens=found.tokens,
            cache_read_input_tokens=found.tokens * (requests - 1),
        )
        saving = plain - price.cost(reads)
    budget_cost = None
    if review.tools and price is not None:
        budget_cost = price.cost(Usage(input_tokens=review.token_budget * requests))
    return ReviewPlan(
        map_tokens=found.tokens if found else 0,
        map_files=found.files if found else 0,
        map_listed=found.listed if found else 0,
        map_detail=found.detail if found else "",
        map_saving_usd=saving,
        max_tool_calls=review.max_tool_calls if review.tools else 0,
        token_budget=review.token_budget,
        budget_cost_usd=budget_cost,
    )
