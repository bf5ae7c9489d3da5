"""What a run did, for whoever reads it in the morning.

``Tally`` is counted as the run goes (the progress display reads it live); at the end it
becomes a report: counts by status and error type, tokens, estimated cost, throughput,
latency, retries, 429s and the rate achieved against the tier's allowance (the busiest
60 seconds of the run, as the tier counts, not the run's mean). The report is
printed and written as JSON beside the Parquet (``OUTPUT.report.json``), where
``pipeline report OUTPUT.parquet`` finds it again.
"""

from __future__ import annotations

import json
import math
import time
from array import array
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pipeline.config.paths import report_path
from pipeline.core import rates
from pipeline.core.atomic import replacing
from pipeline.core.errors import ConfigError
from pipeline.core.limits import Clock, Limits
from pipeline.core.models import CallResult, Usage
from pipeline.core.pricing import Price
from pipeline.core.rows import Status

REPORT_VERSION = 1


@dataclass
class Tally:
    """Running counts of one run. Documents count once, whatever their rows."""

    clock: Clock = time.monotonic
    started: float = field(init=False)
    started_at: float = field(default_factory=time.time)
    discovered: int = 0
    discovery_done: bool = False
    documents: Counter[str] = field(default_factory=Counter)  # by final status
    errors: Counter[str] = field(default_factory=Counter)  # documents, by error type
    reused: int = 0
    calls: int = 0
    attempts: int = 0
    rate_limited: int = 0  # attempts answered 429
    attempt_errors: Counter[str] = field(default_factory=Counter)
    usage: Usage = field(default_factory=Usage)
    cost_usd: float = 0.0
    # Per attempt, as machine numbers (8 bytes each, not a Python object: a night of 100K
    # attempts holds 2.4 MB): seconds to answer (answered attempts), when each was sent
    # (wall clock) and the tokens it was charged, for the rate in the busiest minute against
    # the tier's per-minute limits (``pipeline.core.rates``).
    latencies: array[float] = field(default_factory=lambda: array("d"))
    sent_at: array[float] = field(default_factory=lambda: array("d"))
    sent_tokens: array[int] = field(default_factory=lambda: array("q"))

    def __post_init__(self) -> None:
        self.started = self.clock()

    @property
    def done(self) -> int:
        return sum(self.documents.values())

    @property
    def retries(self) -> int:
        return self.attempts - self.calls

    def elapsed(self) -> float:
        return self.clock() - self.started

    def call(self, result: CallResult, cost: float) -> None:
        self.calls += 1
        self.attempts += len(result.attempts)
        charged = 0
        if result.reply is not None:
            usage = result.reply.usage
            charged = usage.input_tokens + usage.cache_creation_input_tokens + usage.output_tokens
        for attempt in result.attempts:
            self.sent_at.append(attempt.started_at)
            self.sent_tokens.append(charged if attempt.error_kind is None else 0)
            if attempt.error_kind is not None:
                self.attempt_errors[attempt.error_kind] += 1
                self.rate_limited += attempt.status == 429
            else:
                self.latencies.append(attempt.latency_s)
        if result.reply is not None:
            self.usage = self.usage + result.reply.usage
        self.cost_usd += cost

    def document(self, statuses: Sequence[Status], error_type: str | None = None) -> None:
        """A document is finished: its status is its worst row's."""
        status: Status = next((s for s in WORST_FIRST if s in statuses), "ok")
        self.documents[status] += 1
        if error_type is not None and status != "ok":
            self.errors[error_type] += 1


WORST_FIRST: tuple[Status, ...] = ("error", "ok", "skipped")  # a document's status, of its rows'


@dataclass(frozen=True)
class RunInfo:
    """What the report says about the run besides its counts."""

    job: str
    model: str
    base_url: str
    output: Path
    limits: Limits
    price: Price | None
    ended: str  # completed | interrupted | max_duration | budget | fatal
    fatal_error: str | None = None
    batch: bool = False  # sent through Message Batches, at half price
    price_basis: str = "list price"  # where the price comes from (``Job.price_basis``)


def build(tally: Tally, info: RunInfo, *, now: float | None = None) -> dict[str, Any]:
    """The report, as plain data (what the JSON file holds)."""
    wall = max(tally.elapsed(), 1e-9)
    usage = tally.usage
    return {
        "version": REPORT_VERSION,
        "job": info.job,
        "model": info.model,
        "base_url": info.base_url,
        "output": str(info.output),
        "started_at": _iso(tally.started_at),
        "finished_at": _iso(time.time() if now is None else now),
        "wall_s": round(wall, 3),
        "ended": info.ended,
        "fatal_error": info.fatal_error,
        "documents": {
            "total": tally.done + tally.reused,
            # Documents finished by an earlier run are ok (only ok ones are kept).
            "by_status": dict(sorted((tally.documents + Counter(ok=tally.reused)).items())),
            "by_error_type": dict(tally.errors.most_common()),
            "reused": tally.reused,
            "sent": tally.done,
        },
        "calls": _calls(tally),
        "tokens": {
            "input": usage.input_tokens,
            "output": usage.output_tokens,
            "cache_read": usage.cache_read_input_tokens,
            "cache_write": usage.cache_creation_input_tokens,
        },
        "cost_usd": round(tally.cost_usd, 6) if info.price is not None else None,
        "price_basis": info.price_basis if info.price is not None else None,
        "batch": info.batch,
        "throughput": _throughput(tally, wall / 60),
        "allowance": _allowance(
            info.limits, rates.peak(tally.sent_at), rates.peak(tally.sent_at, tally.sent_tokens)
        ),
    }


def _calls(tally: Tally) -> dict[str, Any]:
    return {
        "calls": tally.calls,
        "attempts": tally.attempts,
        "retries": tally.retries,
        "rate_limited_429": tally.rate_limited,
        "attempt_errors": dict(tally.attempt_errors.most_common()),
        "latency_p50_s": _quantile(tally.latencies, 0.50),
        "latency_p95_s": _quantile(tally.latencies, 0.95),
    }


def _throughput(tally: Tally, minutes: float) -> dict[str, Any]:
    usage = tally.usage
    tokens_charged = usage.input_tokens + usage.cache_creation_input_tokens + usage.output_tokens
    return {
        "documents_per_min": round(tally.done / minutes, 2),
        "requests_per_min": round(tally.attempts / minutes, 2),
        "tokens_per_min": round(tokens_charged / minutes, 1),
    }


def _allowance(limits: Limits, rpm: float, tpm: float) -> dict[str, Any]:
    """The rate achieved, in the busiest 60 seconds of the run, as a share of each
    per-minute limit the tier sets."""
    shares: dict[str, Any] = {}
    for name, achieved in (("requests_per_minute", rpm), ("tokens_per_minute", tpm)):
        limit = getattr(limits, name)
        if limit:
            shares[name] = {"limit": limit, "achieved": round(achieved, 1)}
            shares[name]["share"] = round(achieved / limit, 3)
    if limits.max_concurrency:
        shares["max_concurrency"] = limits.max_concurrency
    return shares


def _quantile(values: Sequence[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, math.ceil(q * len(ordered)) - 1)], 4)


def _iso(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).isoformat(timespec="seconds")


# ---- text ----------------------------------------------------------------------------


def render(report: dict[str, Any]) -> str:
    """The report as a person reads it."""
    docs, calls, tokens = report["documents"], report["calls"], report["tokens"]
    counts = ", ".join(f"{n:,} {status}" for status, n in docs["by_status"].items()) or "none"
    lines = [
        f"Run of {report['job']} ({report['model']}), {report['started_at']} to "
        f"{report['finished_at']} ({duration(report['wall_s'])}): {ENDED[report['ended']]}",
    ]
    if report.get("fatal_error"):
        lines.append(f"  stopped by: {report['fatal_error']}")
    lines.append(f"  documents  {docs['total']:,}: {counts}")
    if docs["reused"]:
        lines[-1] += f"; {docs['reused']:,} finished earlier, not sent again"
    if docs["by_error_type"]:
        kinds = ", ".join(f"{kind} {n:,}" for kind, n in docs["by_error_type"].items())
        lines.append(f"  problems   {kinds}")
    lines.append(
        f"  tokens     {tokens['input']:,} in, {tokens['output']:,} out, "
        f"{tokens['cache_read']:,} cache read, {tokens['cache_write']:,} cache write"
    )
    lines.append("  cost       " + _cost(report))
    p50, p95 = calls["latency_p50_s"], calls["latency_p95_s"]
    latency = f"latency p50 {p50:.2f} s, p95 {p95:.2f} s" if p50 is not None else "no replies"
    lines.append(
        f"  calls      {calls['calls']:,} ({calls['attempts']:,} attempts, "
        f"{calls['retries']:,} retries, {calls['rate_limited_429']:,} answered 429); {latency}"
    )
    rate = report["throughput"]
    lines.append(
        f"  throughput {rate['documents_per_min']:,} documents/min, "
        f"{rate['requests_per_min']:,} requests/min, {rate['tokens_per_min']:,.0f} tokens/min"
    )
    shares = _shares(report["allowance"])
    if shares:
        lines.append("  allowance  " + ", ".join(shares) + " (the busiest 60 s)")
    lines.append(f"  results    {report['output']}")
    return "\n".join(lines)


def _cost(report: dict[str, Any]) -> str:
    cost = report["cost_usd"]
    if cost is None:
        return "unknown (no price)"
    basis = report.get("price_basis") or "list price"
    batch = ", Message Batches at half price" if report.get("batch") else ""
    return f"${cost:,.4f} estimated at the {basis}{batch}"


def _shares(allowance: dict[str, Any]) -> list[str]:
    return [
        f"{name.split('_')[0]} {share['achieved']:,.0f}/{share['limit']:,} a minute "
        f"({share['share']:.0%})"
        for name, share in allowance.items()
        if isinstance(share, dict)
    ]


ENDED = {
    "completed": "completed",
    "interrupted": "interrupted (run again to finish)",
    "max_duration": "stopped at --max-duration (run again to finish)",
    "budget": "stopped before passing the job's budget (run again to continue)",
    "fatal": "stopped early",
}


def duration(seconds: float) -> str:
    whole = round(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}h{minutes:02d}m{secs:02d}s" if hours else f"{minutes}m{secs:02d}s"


# ---- files ---------------------------------------------------------------------------


def write(report: dict[str, Any], output: Path) -> Path:
    """Write the report beside ``output``, atomically."""
    path = report_path(output)
    with replacing(path) as partial:
        partial.write_text(
            json.dumps(report, indent=2, ensure_ascii=False) + "\n", encoding="utf-8"
        )
    return path


def load(output: Path) -> dict[str, Any]:
    """The report of the last run that wrote ``output`` (the Parquet path or the JSON)."""
    if not output.name:
        raise ConfigError(
            f"no report at {output}: give the Parquet file a run wrote (its report is kept "
            "beside it as NAME.report.json)"
        )
    path = output if output.name.endswith(".report.json") else report_path(output)
    try:
        report: Any = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(
            f"no report at {path}: give the Parquet file a run wrote (its report is kept "
            "beside it as NAME.report.json)"
        ) from None
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot read the report {path}: {exc}") from None
    if not (isinstance(report, dict) and report.keys() >= _SHOWN_KEYS):
        raise ConfigError(
            f"{path} is not a report this program wrote (it lacks the run's counts); give "
            "the Parquet file a run wrote"
        )
    return report


# What ``render`` and the page read: a JSON file without them is not one of our reports.
_SHOWN_KEYS = frozenset(
    [
        "version",
        "job",
        "model",
        "output",
        "started_at",
        "finished_at",
        "wall_s",
        "ended",
        "documents",
        "calls",
        "tokens",
        "cost_usd",
        "throughput",
        "allowance",
    ]
)
