"""The page's curves, computed on polars columns, say what a walk through the attempts says:
the rates of ``pipeline.core.rates`` and the attempts in flight counted one event at a time."""

from __future__ import annotations

import math

import polars as pl
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.core import rates
from pipeline.output.page.timeline import attempts_over_time, samples

# Times and latencies on a coarse grid, so that ties (same start, an end at another's
# start) are common.
attempt = st.tuples(
    st.integers(0, 400).map(lambda n: n / 2),  # sent at
    st.one_of(st.none(), st.integers(0, 100).map(lambda n: n / 4)),  # latency
    st.one_of(st.none(), st.integers(0, 3_000)),  # input tokens
    st.integers(1, 3),  # attempt
    st.sampled_from([200, 429, 500, None]),  # status
)


def frame(attempts: list[tuple[float, float | None, int | None, int, int | None]]) -> pl.DataFrame:
    ordered = sorted(attempts, key=lambda a: a[0])
    return pl.DataFrame(
        {
            "t": [a[0] - ordered[0][0] for a in ordered],
            "latency_s": [a[1] for a in ordered],
            "input_tokens": [a[2] for a in ordered],
            "output_tokens": [None if a[2] is None else 7 for a in ordered],
            "attempt": [a[3] for a in ordered],
            "status": [a[4] for a in ordered],
            "error_type": [None if a[4] == 200 else "api_error" for a in ordered],
        },
        schema={
            "t": pl.Float64,
            "latency_s": pl.Float64,
            "input_tokens": pl.Int64,
            "output_tokens": pl.Int64,
            "attempt": pl.Int64,
            "status": pl.Int64,
            "error_type": pl.String,
        },
    )


def walked_in_flight(starts: list[float], ends: list[float], at: list[float]) -> list[int]:
    """The most in flight within each sample's stretch, one event at a time."""
    events = sorted([(s, 1) for s in starts] + [(e, -1) for e in ends])
    most, index, level = [], 0, 0
    for moment in at:
        highest = level
        while index < len(events) and events[index][0] <= moment:
            level += events[index][1]
            index += 1
            highest = max(highest, level)
        most.append(highest)
    return most


@settings(max_examples=30, deadline=None)
@given(st.lists(attempt, min_size=1, max_size=80), st.sampled_from([0.0, 30.0, 500.0]))
def test_the_curves_are_those_of_a_walk_through_the_attempts(
    attempts: list[tuple[float, float | None, int | None, int, int | None]], wall_s: float
) -> None:
    attempts_frame = frame(attempts)
    line = attempts_over_time(attempts_frame, wall_s)
    t = attempts_frame["t"].to_list()
    tokens = [(a or 0) + (7 if a is not None else 0) for a in attempts_frame["input_tokens"]]
    ends = [s + (lat or 0.0) for s, lat in zip(t, attempts_frame["latency_s"], strict=True)]
    at = samples(max(wall_s, t[-1]))
    assert line.at == at
    assert line.requests == rates.trailing(t, None, at)
    assert line.tokens == rates.trailing(t, tokens, at)
    assert line.peak_requests == rates.peak(t)
    assert line.peak_tokens == rates.peak(t, tokens)
    assert line.in_flight == walked_in_flight(t, ends, at)
    assert line.peak_in_flight == max(walked_in_flight(t, ends, sorted(t + ends)))
    statuses = attempts_frame["status"].to_list()
    limited = [status == 429 for status in statuses]
    later = [number > 1 for number in attempts_frame["attempt"]]
    failed = [status != 200 and status != 429 for status in statuses]  # None: failed too
    assert line.rate_limited == per_sample(t, limited, at)
    assert line.retries == per_sample(t, later, at)
    assert line.failed == per_sample(t, failed, at)
    assert line.totals == {
        "attempts": len(t),
        "rate_limited": sum(limited),
        "retries": sum(later),
        "failed": sum(failed),
    }


def per_sample(times: list[float], marked: list[bool], at: list[float]) -> list[int]:
    """How many marked times fall in each sample's stretch, one attempt at a time."""
    counts = [0] * len(at)
    for time, mark in zip(times, marked, strict=True):
        if mark:
            counts[min(len(at) - 1, max(0, math.ceil(time / at[0]) - 1))] += 1
    return counts
