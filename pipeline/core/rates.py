"""Rates against a per-minute limit: what was sent in the busiest 60 seconds.

A tier's limit is on any minute, so the honest figure is the peak over a sliding 60-second
window, not the run's mean stretched to a minute (a 7-second run of 23 requests sent 23 in
its busiest minute, not 197). The text report and the HTML page both use these.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Sequence
from itertools import accumulate

WINDOW_S = 60.0


def peak(times: Sequence[float], weights: Sequence[float] | None = None) -> float:
    """The most weight (requests when no weights are given, or tokens) sent in any
    ``[t, t + 60 s)`` window; ``times`` in seconds, in any order."""
    events = sorted(zip(times, weights or [1.0] * len(times), strict=True))
    best = total = 0.0
    first = 0
    for time, weight in events:
        total += weight
        while events[first][0] <= time - WINDOW_S:
            total -= events[first][1]
            first += 1
        best = max(best, total)
    return best


def trailing(
    times: Sequence[float], weights: Sequence[float] | None, at: Sequence[float]
) -> list[float]:
    """For each moment in ``at``, the weight sent in the 60 seconds up to it,
    ``(t - 60 s, t]``: the curve a per-minute limit is drawn against."""
    order = sorted(range(len(times)), key=times.__getitem__)
    ordered = [times[i] for i in order]
    sums = [0.0, *accumulate(weights[i] if weights else 1.0 for i in order)]
    return [sums[bisect_right(ordered, t)] - sums[bisect_right(ordered, t - WINDOW_S)] for t in at]
