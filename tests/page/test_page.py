"""The page as a file: where it is written, what it keeps across runs, what it never holds.
(What it shows is checked in a real browser: test_in_browser.py.)"""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path

import anyio
import pytest

from pipeline.cli import EXIT_OK, main
from pipeline.config.load import load_job
from pipeline.config.paths import page_path
from pipeline.output.page.data import fix_of
from pipeline.run.runner import RunControl, run_job
from pipeline.simulator import SimulatorServer
from pipeline.state import store
from pipeline.state.store import ResultStore
from tests.test_run import JOBS, endpoint_of


def run_sample(server: SimulatorServer, output: Path, *overrides: str, force: bool = False) -> None:
    job = load_job(JOBS / "summarize.toml", output=str(output), overrides=list(overrides))
    anyio.run(run_job, job, endpoint_of(server), RunControl(force=force))


def test_each_run_is_kept_in_the_state_and_the_page_shows_them_all(
    simulator: SimulatorServer, tmp_path: Path
) -> None:
    output = tmp_path / "out.parquet"
    run_sample(simulator, output)
    run_sample(simulator, output, force=True)
    runs = store.run_summaries(output.with_name("out.state.sqlite"))
    assert len(runs) == 2
    assert [run["documents"]["total"] for run in runs] == [9, 9]
    assert runs[0]["documents"]["reused"] == 0
    page = page_path(output).read_text()
    assert page.count('<figure id="trend-') == 4  # documents, errors, cost, duration
    trend_rows = re.search(r'<table id="runs">.*?</table>', page, re.S)
    assert trend_rows is not None
    assert trend_rows.group().count("<tr>") == 1 + 2  # the header and one row per run


def test_the_page_is_written_where_asked_and_fetches_nothing(
    simulator: SimulatorServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    output = tmp_path / "out.parquet"
    run_sample(simulator, output, "output.html_report=false")
    assert not page_path(output).exists()  # the option is off: no page from the run

    assert main(["report", str(output), "--html"]) == EXIT_OK
    assert page_path(output).exists()
    elsewhere = tmp_path / "mail" / "night.html"
    elsewhere.parent.mkdir()
    json_report = tmp_path / "out.report.json"
    assert main(["report", str(json_report), "--html", str(elsewhere)]) == EXIT_OK
    assert f"wrote {elsewhere}" in capsys.readouterr().out
    page = elsewhere.read_text()
    assert page == page_path(output).read_text()  # the same run, from either file
    # Self-contained: no script, no link, no source to fetch.
    assert not re.search(r"<script|<link|\bsrc=|\bhref=|@import|url\(", page)
    assert "default-src 'none'" in page
    # The sample job's gateway id is priced at the list price of the model it names: said.
    assert (
        '<p id="price-basis">Estimated at the list price of Claude Sonnet 3.7: a gateway may '
        "charge its own, set [pricing].</p>" in page
    )


def test_a_state_from_before_runs_were_kept_gains_the_table(tmp_path: Path) -> None:
    state = tmp_path / "old.state.sqlite"
    db = sqlite3.connect(state)
    db.execute("create table documents (key text primary key, rows text, calls text)")
    db.execute("insert into documents values ('k', '[]', '[]')")
    db.commit()
    db.close()
    assert store.run_summaries(state) == []  # read-only: no table yet, no error
    opened = ResultStore(state)
    opened.record_run({"started_at": "2026-12-01T01:30:00+00:00", "documents": {"total": 3}})
    opened.close()
    assert store.run_summaries(state) == [
        {"started_at": "2026-12-01T01:30:00+00:00", "documents": {"total": 3}}
    ]
    assert store.finished_keys(state) == {"k"}  # what was there is kept


@pytest.mark.parametrize(
    ("message", "fix"),
    [
        (
            "broken.pdf is not a readable PDF (EOF): it may be truncated; re-export it",
            "re-export it",
        ),
        ("x.pdf needs a password: save a copy without it", "save a copy without it"),
        ("no advice here", ""),
    ],
)
def test_the_fix_is_what_a_message_says_last(message: str, fix: str) -> None:
    assert fix_of(message) == fix
