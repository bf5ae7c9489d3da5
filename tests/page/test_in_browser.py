"""The report's page opened in a real headless Chromium: every chart drawn with the run's
numbers, nothing from the documents or the model run as markup, faults shown where they
happened, and no error on the console."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import TYPE_CHECKING

import anyio
import polars as pl
import pytest

from pipeline.config.load import load_job
from pipeline.config.paths import page_path
from pipeline.output.page import svg
from pipeline.run.runner import RunControl, run_job
from pipeline.simulator import Faults, SimulatorConfig, SimulatorServer
from tests.conftest import SkipClock, StartSimulator
from tests.page.conftest import Opened
from tests.test_run import JOBS, endpoint_of

if TYPE_CHECKING:
    from selenium.webdriver.remote.webdriver import WebDriver

HOSTILE_NAME = "<script>alert(1)</script>.txt"  # a folder "<script>alert(1)<", a file "script>.txt"
HOSTILE_ANSWERS = ["<b>bold</b>", "<svg/onload=alert(2)>"]


def shown_as_nothing_but_text(page: Opened) -> None:
    """The page has no script of its own: any element of these kinds would be injected."""
    assert page.js("return document.querySelectorAll('script, iframe, object, embed').length") == 0
    assert page.js("return document.querySelectorAll('body img, body b, svg svg').length") == 0
    assert page.js("return window.__alerts") == []
    assert page.js("return performance.getEntriesByType('resource').length") == 0  # no fetch
    assert page.console_errors() == []


def test_every_chart_of_the_sample_run_shows_its_numbers(
    browser: WebDriver, simulator: SimulatorServer, tmp_path: Path
) -> None:
    job = load_job(JOBS / "summarize.toml", output=str(tmp_path / "out.parquet"))
    outcome = anyio.run(run_job, job, endpoint_of(simulator))
    report = outcome.report
    page = Opened(browser, page_path(outcome.output))

    headline = page.numbers("#headline")
    by_status = report["documents"]["by_status"]
    assert headline["ok"] == str(by_status["ok"])
    assert headline["error"] == str(by_status["error"])
    assert headline["cost"] == f"${report['cost_usd']:,.4f}"
    # Every chart is drawn, with a size on the page.
    charts = page.js(
        "return [...document.querySelectorAll('svg.chart')].map(s => {"
        "const r = s.getBoundingClientRect(); return [s.closest('figure').id, r.width, r.height]})"
    )
    drawn = {figure: (w, h) for figure, w, h in charts}
    for figure in ("chart-requests", "chart-tokens", "chart-concurrency", "chart-latency"):
        assert drawn[figure][0] > 300
        assert drawn[figure][1] > 100
    calls = pl.read_parquet(outcome.calls_output)
    rate = page.numbers("#chart-requests")
    assert rate["attempts"] == str(len(calls)) == str(report["calls"]["attempts"])
    assert rate["busiest minute"] == str(len(calls))  # a run of a second: all in one minute
    # The requests curve ends at what the last minute held: every attempt.
    points = page.js(
        "return document.querySelector('#chart-requests polyline').getAttribute('points')"
    )
    last_y = float(points.split()[-1].split(",")[1])
    assert last_y == pytest.approx(svg.TOP, abs=0.1)  # the top of the axis is the peak
    latency = page.numbers("#chart-latency")
    assert latency["p50"] == f"{report['calls']['latency_p50_s']:.2f} s"
    assert latency["p95"] == f"{report['calls']['latency_p95_s']:.2f} s"
    assert page.texts("#chart-latency .quantile-label")[0].startswith("p50 ")
    bars = page.numbers("#chart-cost")
    assert sum(float(v.split()[0].lstrip("$")) for v in bars.values()) == pytest.approx(
        report["cost_usd"], abs=1e-3
    )
    # Problems grouped by type, each with its documents.
    kinds = page.js(
        "return Object.fromEntries([...document.querySelectorAll('#problems .problem')]"
        ".map(p => [p.dataset.kind, [...p.querySelectorAll('li')].map(li => li.textContent)]))"
    )
    assert kinds == {"encrypted_document": ["encrypted.pdf"], "unreadable": ["broken.pdf"]}
    assert "qpdf" in page.text("#problems .problem[data-kind=unreadable]")
    shown_as_nothing_but_text(page)


STRUCTURED_JOB = """
[job]
name = "hostile"
[inputs]
paths = ["docs"]
[prompt]
template = "Classify {source}: {text}"
[model]
name = "claude-haiku-4-5"
[structured.schema]
type = "object"
required = ["verdict"]
[structured.schema.properties.verdict]
type = "string"
enum = ANSWERS
[output]
path = "out/hostile.parquet"
"""


def test_names_and_answers_holding_html_show_as_text_and_run_nothing(
    browser: WebDriver, simulator: SimulatorServer, tmp_path: Path
) -> None:
    docs = tmp_path / "docs"
    hostile = docs / HOSTILE_NAME
    hostile.parent.mkdir(parents=True)
    hostile.write_text("a file whose name is markup\n")
    for n in range(5):
        (docs / f"plain-{n}.txt").write_text(f"an ordinary file, number {n}\n")
    (docs / "<img src=x onerror=alert(3)>.txt").write_text("")  # empty: skipped, named
    spec = tmp_path / "hostile.toml"
    spec.write_text(STRUCTURED_JOB.replace("ANSWERS", json.dumps(HOSTILE_ANSWERS)))
    outcome = anyio.run(run_job, load_job(spec), endpoint_of(simulator))
    rows = pl.read_parquet(outcome.output)
    assert HOSTILE_NAME in rows["source"].to_list()

    page = Opened(browser, page_path(outcome.output))
    first_rows = page.texts("#first-rows td")
    assert HOSTILE_NAME in first_rows
    verdicts = set(rows.filter(pl.col("status") == "ok")["verdict"])
    assert verdicts <= set(first_rows)
    # The categorical chart of the answers, its labels as text.
    assert set(page.numbers("figure.category[data-column=verdict]")) == verdicts
    assert verdicts <= set(page.texts("figure.category svg text.name"))
    skipped = page.text("#skipped")
    assert "<img src=x onerror=alert(3)>.txt" in skipped
    shown_as_nothing_but_text(page)


def test_a_run_with_faults_shows_429s_retries_and_errors_where_they_happened(
    browser: WebDriver, start_simulator: StartSimulator, tmp_path: Path
) -> None:
    faults = Faults(rate_limited=0.3, rate_limited_retry_after=0.05, api_error=0.3, seed=4)
    server = start_simulator(SimulatorConfig(faults=faults))
    job = load_job(
        JOBS / "summarize.toml",
        output=str(tmp_path / "out.parquet"),
        overrides=["retry.max_attempts=2", 'limits.tier="basic"'],
    )
    clock = SkipClock()  # the tier's pacing and the retry waits on virtual time
    control = RunControl(clock=clock, sleep=clock.sleep)
    outcome = anyio.run(run_job, job, endpoint_of(server), control)
    calls = pl.read_parquet(outcome.calls_output)
    t = calls["started_at"].dt.epoch("us") / 1e6
    calls = calls.with_columns((t - t.min()).alias("t"))
    limited = calls.filter(pl.col("status") == 429)["t"].to_list()
    retried = calls.filter(pl.col("attempt") > 1)["t"].to_list()
    rows = pl.read_parquet(outcome.output)
    exhausted = rows.filter(pl.col("error_type") == "retries_exhausted")["source"].to_list()
    assert limited
    assert retried
    assert exhausted  # the seed was chosen so that all three happen

    page = Opened(browser, page_path(outcome.output))
    numbers = page.numbers("#chart-requests")
    assert numbers["answered 429"] == str(len(limited))
    assert numbers["retries"] == str(len(retried))
    assert "of 50 (" in numbers["busiest minute"]  # against the basic tier's limit
    for kind, times in (("429", limited), ("retry", retried)):
        step, marks = marks_of(page, kind)
        assert sum(count for _, count in marks) == len(times)
        # A mark stands at the end of the stretch of time its events fell in.
        for moment in times:
            assert any(-0.01 <= at - moment <= step + 0.01 for at, _ in marks), (kind, moment)
        for at, _ in marks:
            assert any(-0.01 <= at - moment <= step + 0.01 for moment in times), (kind, at)
    problem = page.texts("#problems .problem[data-kind=retries_exhausted] li")
    assert sorted(problem) == sorted(exhausted)
    shown_as_nothing_but_text(page)


def marks_of(page: Opened, kind: str) -> tuple[float, list[tuple[float, int]]]:
    """The time a sample stands for, and where the marks of ``kind`` stand (seconds from
    the first request) with how many events each marks, read from the SVG."""
    step, span, path, counts = page.js(
        "const c = document.querySelector('#chart-requests svg');"
        "const g = c.querySelector(`g.marks[data-kind='${arguments[0]}']`);"
        "return [Number(c.dataset.step), Number(c.dataset.span),"
        "g.querySelector('path').getAttribute('d'), g.dataset.counts]",
        kind,
    )
    inner = svg.WIDTH - svg.LEFT - svg.RIGHT
    xs = [float(x) for x in re.findall(r"M([\d.]+) ", path)]
    moments = [(x - svg.LEFT) / inner * span for x in xs]
    return step, list(zip(moments, map(int, counts.split()), strict=True))
