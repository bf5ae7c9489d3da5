"""The morning report as one self-contained HTML page (``OUTPUT.report.html``).

Built from the run's own files: the JSON report, the results and calls Parquet, and the
summaries of earlier runs kept in the job's state (``pipeline.state.store.run_summaries``).
Jinja2 renders it with autoescaping on, so every value that comes from the documents or
the model (file names, error messages, answers) is text, never markup; the charts are
inline SVG (``pipeline.output.page.svg``); there is no script and nothing is fetched (a Content
Security Policy says so too), so it opens from a mail attachment or a file share.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any

import jinja2
from markupsafe import Markup

from pipeline.config.paths import page_path
from pipeline.core.atomic import replacing
from pipeline.core.errors import ConfigError
from pipeline.core.logs import escape_controls
from pipeline.core.version import __version__
from pipeline.output import report
from pipeline.output.page import svg
from pipeline.output.page.data import PageData, Table, gather
from pipeline.state import store


def write(
    summary: dict[str, Any], output: Path, calls: Path, state: Path, path: Path | None = None
) -> Path:
    """Write the page of the run that wrote ``output`` (beside it, unless ``path`` says
    where), atomically."""
    data = gather(summary, output, calls, store.run_summaries(state))
    path = path or page_path(output)
    try:
        with replacing(path) as partial:
            partial.write_text(render(data), encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"--html: cannot write {path} ({exc.strerror or exc})") from None
    return path


def write_for(summary: dict[str, Any], given: Path, path: Path | None = None) -> Path:
    """The page of a past run, from the Parquet file it wrote (or its ``.report.json``):
    its calls and state are beside it, named as ``pipeline.config.spec.Job`` names them."""
    suffix = ".report.json"
    output = (
        given.with_name(given.name.removesuffix(suffix) + ".parquet")
        if given.name.endswith(suffix)
        else given
    )
    calls = output.with_name(f"{output.stem}.calls.parquet")
    state = output.with_name(f"{output.stem}.state.sqlite")
    return write(summary, output, calls, state, path)


def render(data: PageData) -> str:
    environment = jinja2.Environment(
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        finalize=_shown,
    )
    environment.filters["duration"] = report.duration
    source = resources.files(__package__).joinpath("page.html.j2").read_text(encoding="utf-8")
    return environment.from_string(source).render(_context(data))


def _shown(value: Any) -> Any:
    """Each value the page shows, its control characters escaped as the console shows them
    (a file name's ESC or BEL); markup the page made itself (the charts) is left as it is."""
    if isinstance(value, str) and not isinstance(value, Markup):
        return escape_controls(value)
    return value


def _context(data: PageData) -> dict[str, Any]:
    r = data.report
    docs = r["documents"]
    by_status = docs["by_status"]
    cost = r["cost_usd"]
    return {
        "r": r,
        "d": data,
        "version": __version__,
        "ended": report.ENDED[r["ended"]],
        "headline": [
            ("ok", f"{by_status.get('ok', 0):,}"),
            ("error", f"{by_status.get('error', 0):,}"),
            ("skipped", f"{by_status.get('skipped', 0):,}"),
            ("reused from earlier runs", f"{docs['reused']:,}"),
            ("cost", "unknown" if cost is None else f"${cost:,.4f}"),
            ("wall time", report.duration(r["wall_s"])),
        ],
        "problem_count": f"{by_status.get('error', 0):,}",
        "skipped_count": f"{by_status.get('skipped', 0):,}",
        "charts": _charts(data),
        **_timeline_numbers(data),
        "latency_numbers": _latency_numbers(data),
        "cost_numbers": [(m, f"${c:,.4f} ({n:,} docs)") for m, n, c in data.cost_by_model],
        "trend_titles": TREND_TITLES,
        "trend_table": _trend_table(data.runs),
    }


TREND_TITLES = (
    ("documents", "Documents"),
    ("errors", "Errors"),
    ("cost", "Cost (USD)"),
    ("wall", "Duration (minutes)"),
)


def _allowance(data: PageData, name: str) -> float | None:
    share = data.report["allowance"].get(name)
    return float(share["limit"]) if isinstance(share, dict) else None


def _share(peak: float, limit: float | None) -> str:
    return f"{peak:,.0f} of {limit:,.0f} ({peak / limit:.0%})" if limit else f"{peak:,.0f}"


def _timeline_numbers(data: PageData) -> dict[str, list[tuple[str, str]]]:
    line = data.timeline
    if line is None:
        return {"rate_numbers": [], "token_numbers": [], "concurrency_numbers": []}
    most = data.report["allowance"].get("max_concurrency")
    return {
        "rate_numbers": [
            ("busiest minute", _share(line.peak_requests, _allowance(data, "requests_per_minute"))),
            ("attempts", f"{line.totals['attempts']:,}"),
            ("answered 429", f"{line.totals['rate_limited']:,}"),
            ("retries", f"{line.totals['retries']:,}"),
            ("failed attempts", f"{line.totals['failed']:,}"),
        ],
        "token_numbers": [
            ("busiest minute", _share(line.peak_tokens, _allowance(data, "tokens_per_minute"))),
        ],
        "concurrency_numbers": [
            ("most at once", _share(line.peak_in_flight, float(most) if most else None)),
        ],
    }


def _latency_numbers(data: PageData) -> list[tuple[str, str]]:
    calls = data.report["calls"]
    p50, p95 = calls["latency_p50_s"], calls["latency_p95_s"]
    return [
        ("answered", f"{len(data.latencies):,}"),
        ("p50", "" if p50 is None else f"{p50:.2f} s"),
        ("p95", "" if p95 is None else f"{p95:.2f} s"),
        ("slowest", f"{max(data.latencies, default=0):.2f} s"),
    ]


def _charts(data: PageData) -> dict[str, Any]:
    charts: dict[str, Any] = {
        "categories": [
            svg.bars([(v, float(n)) for v, n in c.counts], label=f"{c.column}: values")
            for c in data.categories
        ],
        "trends": _trend_charts(data.runs),
    }
    if data.timeline is not None:
        charts.update(_time_charts(data))
    if data.latencies:
        calls = data.report["calls"]
        quantiles = {"p50": calls["latency_p50_s"], "p95": calls["latency_p95_s"]}
        charts["latency"] = svg.histogram(
            data.latencies,
            label="latency of answered attempts",
            quantiles={k: v for k, v in quantiles.items() if v is not None},
        )
    charts["cost"] = svg.bars(
        [(m, c) for m, _, c in data.cost_by_model], label="cost by model", fmt="${:,.4f}"
    )
    return charts


def _time_charts(data: PageData) -> dict[str, Any]:
    line = data.timeline
    assert line is not None
    most = data.report["allowance"].get("max_concurrency")
    marks = [
        svg.Marks("429", line.rate_limited),
        svg.Marks("retry", line.retries),
        svg.Marks("failed", line.failed),
    ]
    return {
        "requests": svg.over_time(
            line.at,
            line.requests,
            label="requests per minute",
            limit=_allowance(data, "requests_per_minute"),
            marks=marks,
        ),
        "tokens": svg.over_time(
            line.at,
            line.tokens,
            label="tokens per minute",
            limit=_allowance(data, "tokens_per_minute"),
        ),
        "concurrency": svg.over_time(
            line.at, line.in_flight, label="attempts in flight", limit=most or None
        ),
    }


def _trend_values(run: dict[str, Any]) -> dict[str, float]:
    by_status = run["documents"]["by_status"]
    return {
        "documents": float(run["documents"]["total"]),
        "errors": float(by_status.get("error", 0)),
        "cost": float(run["cost_usd"] or 0.0),
        "wall": float(run["wall_s"]) / 60,
    }


def _trend_charts(runs: list[dict[str, Any]]) -> dict[str, Any]:
    values = [(run["started_at"][:16].replace("T", " "), _trend_values(run)) for run in runs]
    formats = {"cost": "${:,.4f}", "wall": "{:,.1f}"}
    return {
        key: svg.bars(
            [(when, v[key]) for when, v in values],
            label=f"{title} per run",
            fmt=formats.get(key, "{:,.0f}"),
        )
        for key, title in TREND_TITLES
    }


def _trend_table(runs: list[dict[str, Any]]) -> Table:
    rows = []
    for run in reversed(runs):  # newest first
        by_status = run["documents"]["by_status"]
        cost = run["cost_usd"]
        rows.append(
            [
                run["started_at"],
                f"{run['documents']['total']:,}",
                f"{by_status.get('ok', 0):,}",
                f"{by_status.get('error', 0):,}",
                "" if cost is None else f"${cost:,.4f}",
                report.duration(run["wall_s"]),
                report.ENDED[run["ended"]],
            ]
        )
    return Table(["run started", "documents", "ok", "errors", "cost", "duration", "ended"], rows)
