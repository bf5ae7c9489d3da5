"""A table job end to end against the simulator: a row per input row, columns kept, template
columns filled, a re-run that sends only the changed rows; ``validate`` and ``plan`` too."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import anyio
import polars as pl
import pytest

from pipeline.cli import main
from pipeline.config.endpoint import ApiKey, Endpoint
from pipeline.config.load import load_job
from pipeline.core.errors import ConfigError
from pipeline.run import plan
from pipeline.run.runner import run_job
from pipeline.simulator import SimulatorServer
from tests.conftest import StartSimulator
from tests.test_run import run_cli

ROOT = Path(__file__).resolve().parents[2]
JOB = ROOT / "jobs" / "triage_tickets.toml"


def endpoint_of(server: SimulatorServer) -> Endpoint:
    return Endpoint(server.url, ApiKey(server.api_key), key_source="$TEST_KEY")


def tickets(count: int, *, changed: frozenset[int] = frozenset()) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "ticket_id": [f"T-{n}" for n in range(count)],
            "customer_tier": ["pro" if n % 2 else "basic" for n in range(count)],
            "title": [f"Title {n}" for n in range(count)],
            "body": [
                f"Ticket body {n}" + (" (edited)" if n in changed else "") for n in range(count)
            ],
            "opened_at": [f"2026-11-{1 + n % 28:02d}" for n in range(count)],
            "seats": list(range(count)),
        }
    )


def run(table: Path, out: Path, server: SimulatorServer, *extra: str) -> pl.DataFrame:
    job = load_job(
        JOB,
        inputs=[str(table)],
        output=str(out),
        overrides=['inputs.keep_columns=["ticket_id", "seats"]', *extra],
    )
    outcome = anyio.run(run_job, job, endpoint_of(server))
    return pl.read_parquet(outcome.output)


def test_rows_of_a_parquet_table_end_to_end(
    start_simulator: StartSimulator, tmp_path: Path
) -> None:
    server = start_simulator()
    table = tmp_path / "tickets.parquet"
    tickets(300).write_parquet(table, row_group_size=64)
    rows = run(table, tmp_path / "out.parquet", server)
    assert len(rows) == 300
    assert rows["status"].unique().to_list() == ["ok"]
    assert rows["source"].n_unique() == 300
    assert set(rows["source"]) == {f"tickets.parquet#T-{n}" for n in range(300)}
    # kept columns join back, typed as in the table
    assert rows.schema["seats"] == pl.Int64
    assert dict(zip(rows["ticket_id"], rows["seats"], strict=True))["T-7"] == 7
    # the template's columns were filled from the row: the reply echoes the prompt's words
    served = server.stats()["served"]
    assert served["total"] == 300
    assert rows["summary"].null_count() == 0

    # an export where 3 rows changed, 1 was added and 1 removed sends 4 requests
    tickets(301, changed=frozenset({5, 17, 99})).filter(pl.col("ticket_id") != "T-0").write_parquet(
        table
    )
    again = run(table, tmp_path / "out.parquet", server)
    assert server.stats()["served"]["total"] == 304
    assert len(again) == 300
    assert "T-0" not in set(again["ticket_id"])
    assert "T-300" in set(again["ticket_id"])

    # unchanged: nothing sent
    run(table, tmp_path / "out.parquet", server)
    assert server.stats()["served"]["total"] == 304


def test_template_columns_reach_the_request(
    start_simulator: StartSimulator, tmp_path: Path
) -> None:
    server = start_simulator()
    table = tmp_path / "tickets.csv"
    tickets(2).write_csv(table)
    job = load_job(
        JOB,
        inputs=[str(table)],
        output=str(tmp_path / "out.parquet"),
        overrides=['prompt.template="Customer {customer_tier} wrote {title}: {text}"'],
    )
    outcome = anyio.run(run_job, job, endpoint_of(server))
    rows = pl.read_parquet(outcome.output).sort("source")
    summaries = rows["summary"].to_list()
    assert rows["status"].to_list() == ["ok", "ok"]
    assert summaries


def test_validate_names_a_missing_column(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    table = tmp_path / "tickets.csv"
    tickets(2).write_csv(table)
    status = main(
        ["validate", str(JOB), str(table), "--set", 'prompt.template="{priority} {text}"']
    )
    assert status == 2
    err = capsys.readouterr().err
    assert "prompt.template: tickets.csv has no column 'priority'" in err or "priority" in err
    assert "ticket_id, customer_tier, title, body, opened_at, seats" in err


def test_keep_columns_need_a_text_column(tmp_path: Path) -> None:
    spec = tmp_path / "job.toml"
    spec.write_text(
        '[inputs]\npaths = ["."]\nkeep_columns = ["a"]\n'
        '[prompt]\ntemplate = "{text}"\n[model]\nname = "claude-haiku-4-5"\n',
        encoding="utf-8",
    )
    with pytest.raises(ConfigError, match=r"set inputs\.text_column to the column"):
        load_job(spec)


def test_plan_counts_rows(tmp_path: Path) -> None:
    table = tmp_path / "tickets.jsonl"
    tickets(40).write_ndjson(table)
    made = plan.make_plan(load_job(JOB, inputs=[str(table)], output=str(tmp_path / "o.parquet")))
    assert made.documents == 40
    assert made.requests == 40


def test_sample_job_runs(simulator: SimulatorServer, tmp_path: Path) -> None:
    folder = tmp_path / "sample"
    shutil.copytree(ROOT / "sample_data" / "tables", folder)
    job = load_job(JOB, output=str(tmp_path / "out.parquet"))
    outcome = anyio.run(run_job, job, endpoint_of(simulator))
    rows = pl.read_parquet(outcome.output)
    assert rows["status"].value_counts().sort("status").rows() == [("ok", 7), ("skipped", 1)]
    skipped = rows.filter(pl.col("status") == "skipped").row(0, named=True)
    assert skipped["ticket_id"] == "T-1008"  # a bad row still carries its kept columns
    assert rows.schema["urgency"] == pl.Int64


def test_a_template_column_may_not_reach_into_a_value(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"unknown placeholder \{title\.upper\}"):
        load_job(JOB, overrides=['prompt.template="{title.upper} {text}"'])


def test_without_text_column_unknown_placeholders_are_refused() -> None:
    with pytest.raises(ConfigError, match=r"unknown placeholder \{title\}"):
        load_job(ROOT / "jobs" / "summarize.toml", overrides=['prompt.template="{title} {text}"'])


def test_a_nightly_export_under_a_new_name_sends_only_the_changed_rows(
    start_simulator: StartSimulator, tmp_path: Path
) -> None:
    server = start_simulator()
    first = tmp_path / "exports" / "tickets-2026-12-01.csv"
    first.parent.mkdir()
    tickets(50).write_csv(first)
    out = tmp_path / "out.parquet"
    run(first, out, server)
    assert server.stats()["served"]["total"] == 50
    moved = tmp_path / "elsewhere" / "tickets-2026-12-02.csv"
    moved.parent.mkdir()
    tickets(50, changed=frozenset({7})).write_csv(moved)
    rows = run(moved, out, server)
    assert server.stats()["served"]["total"] == 51  # only T-7 again
    assert set(rows["source"]) == {f"tickets-2026-12-02.csv#T-{n}" for n in range(50)}
    assert rows["doc_id"].n_unique() == 50


def test_two_tables_with_the_same_ids_give_a_row_each(
    start_simulator: StartSimulator, tmp_path: Path
) -> None:
    server = start_simulator()
    folder = tmp_path / "exports"
    folder.mkdir()
    tickets(3).write_csv(folder / "a.csv")
    tickets(3).write_csv(folder / "b.csv")
    job = load_job(JOB, inputs=[str(folder)], output=str(tmp_path / "out.parquet"))
    rows = pl.read_parquet(anyio.run(run_job, job, endpoint_of(server)).output)
    assert sorted(rows["source"]) == [f"{t}.csv#T-{n}" for t in "ab" for n in range(3)]
    assert rows["doc_id"].n_unique() == 6
    assert rows["status"].unique().to_list() == ["ok"]


def test_numbers_as_text_and_bad_csv_lines_end_as_rows_and_exit_1(tmp_path: Path) -> None:
    folder = tmp_path / "exports"
    folder.mkdir()
    lines = [
        {"ticket_id": 1, "customer_tier": True, "title": 2.5, "body": 123, "opened_at": 7},
        {"ticket_id": "T-2", "customer_tier": "pro", "title": "t", "body": ["a", 1]},
    ]
    (folder / "a.jsonl").write_text(
        "".join(json.dumps(line) + "\n" for line in lines), encoding="utf-8"
    )
    (folder / "b.csv").write_text(
        "ticket_id,customer_tier,title,body,opened_at\nW1,a,b\nW2,a,b\n", encoding="utf-8"
    )
    out = tmp_path / "out.parquet"
    done = run_cli("run", str(JOB), str(folder), "--simulate", "--output", str(out))
    assert "Traceback" not in done.stderr
    assert done.returncode == 1, done.stderr  # the CSV's two bad lines
    rows = pl.read_parquet(out).sort("source")
    assert rows.select("source", "status").rows() == [
        ("a.jsonl#1", "ok"),
        ("a.jsonl#T-2", "ok"),
        ("b.csv#line-2", "error"),
        ("b.csv#line-3", "error"),
    ]
