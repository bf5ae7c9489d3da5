"""The run's attempts over time, reduced in polars to a few hundred samples.

The curves are computed on the attempts' columns, never on Python lists of them: at 100,000
attempts the lists, their sorted copies and the events of each attempt held some 50 MB at
the end of a run. Each figure is the one ``pipeline.core.rates`` (``trailing``, ``peak``)
and a walk through the attempts in time order would give.
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

from pipeline.core.rates import WINDOW_S


@dataclass(frozen=True)
class Timeline:
    """The run's attempts over time, sampled at ``at`` (seconds from the start)."""

    at: list[float]
    requests: list[float]  # sent in the 60 s up to each moment
    tokens: list[float]
    in_flight: list[int]  # the most attempts in flight since the previous moment
    rate_limited: list[int]  # 429s answered since the previous moment
    retries: list[int]  # attempts after the first, sent since the previous moment
    failed: list[int]  # other failed attempts since the previous moment
    peak_requests: float
    peak_tokens: float
    peak_in_flight: int
    totals: dict[str, int]  # attempts, rate_limited, retries, failed


def samples(wall_s: float) -> list[float]:
    count = int(min(600, max(120, wall_s / 10)))
    step = max(wall_s, 1e-3) / count
    return [step * (n + 1) for n in range(count)]


def attempts_over_time(attempts: pl.DataFrame, wall_s: float) -> Timeline:
    """``attempts``: at least one, sorted by ``t`` (seconds from the first request)."""
    frame = attempts.select(
        pl.col("t"),
        (pl.col("input_tokens").fill_null(0) + pl.col("output_tokens").fill_null(0)).alias("w"),
        (pl.col("t") + pl.col("latency_s").fill_null(0)).alias("end"),
        (pl.col("attempt") > 1).fill_null(False).alias("later"),
        (pl.col("status") == 429).fill_null(False).alias("limited"),
        (pl.col("error_type").is_not_null() & (pl.col("status") != 429).fill_null(True)).alias(
            "failed"
        ),
    )
    t = frame["t"]
    at = samples(max(wall_s, t.tail(1).to_list()[0]))
    moments = pl.Series(at, dtype=pl.Float64)
    tokens = frame["w"]
    flight = _flight_events(t, frame["end"])
    counts = {name: int(frame[name].sum()) for name in ("later", "limited", "failed")}
    return Timeline(
        at=at,
        requests=[float(n) for n in _trailing(t, None, moments).to_list()],
        tokens=[float(n) for n in _trailing(t, tokens, moments).to_list()],
        in_flight=_in_flight(flight, moments),
        rate_limited=_per_sample(t.filter(frame["limited"]), at),
        retries=_per_sample(t.filter(frame["later"]), at),
        failed=_per_sample(t.filter(frame["failed"]), at),
        peak_requests=float(_most(_trailing(t, None, t))),
        peak_tokens=float(_most(_trailing(t, tokens, t))),
        peak_in_flight=max(0, _most(flight["level"])),
        totals={
            "attempts": len(t),
            "rate_limited": counts["limited"],
            "retries": counts["later"],
            "failed": counts["failed"],
        },
    )


def _trailing(t: pl.Series, weights: pl.Series | None, at: pl.Series) -> pl.Series:
    """For each moment in ``at``, the weight (or count) of the attempts sent in the 60 s up
    to it, ``(moment - 60 s, moment]``; ``t`` sorted. Over ``at = t`` its largest value is
    the busiest minute (``rates.peak``: the weights are never negative)."""
    upto = t.search_sorted(at, side="right")
    after = t.search_sorted(at - WINDOW_S, side="right")
    if weights is None:
        return upto.cast(pl.Int64) - after.cast(pl.Int64)
    sums = pl.concat([pl.Series([0], dtype=pl.Int64), weights.cast(pl.Int64).cum_sum()])
    return sums.gather(upto) - sums.gather(after)


def _most(values: pl.Series) -> int:
    found = values.max()
    return found if isinstance(found, int) else 0


def _flight_events(starts: pl.Series, ends: pl.Series) -> pl.DataFrame:
    """Attempts starting (+1) and ending (-1), in time order (an end before a start at the
    same moment), with the number in flight after each."""
    events = pl.concat(
        [
            pl.DataFrame({"time": starts, "change": pl.repeat(1, len(starts), eager=True)}),
            pl.DataFrame({"time": ends, "change": pl.repeat(-1, len(ends), eager=True)}),
        ]
    ).sort("time", "change")
    return events.with_columns(pl.col("change").cum_sum().alias("level"))


def _in_flight(events: pl.DataFrame, at: pl.Series) -> list[int]:
    """The most attempts in flight at once within each sample's stretch of time: an event
    at ``time`` falls in the stretch of the first moment at or after it (events after the
    last moment fall in none)."""
    stretches = (
        events.with_columns(at.search_sorted(events["time"], side="left").alias("k"))
        .group_by("k", maintain_order=True)
        .agg(pl.col("level").max().alias("most"), pl.col("level").last().alias("last"))
    )
    found = {int(k): (int(most), int(last)) for k, most, last in stretches.iter_rows()}
    most: list[int] = []
    level = 0
    for k in range(len(at)):
        highest = level  # what was in flight when the stretch began
        if k in found:
            highest = max(highest, found[k][0])
            level = found[k][1]
        most.append(highest)
    return most


def _per_sample(marked: pl.Series, at: list[float]) -> list[int]:
    """How many of the ``marked`` times fall in each sample's stretch."""
    step, last = at[0], len(at) - 1
    buckets = ((marked / step).ceil() - 1).clip(0, last).cast(pl.Int64)
    counts = [0] * len(at)
    for bucket, count in buckets.value_counts().iter_rows():
        counts[int(bucket)] += int(count)
    return counts
