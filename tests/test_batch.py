"""Message Batches mode against the simulator's batch endpoints: half price, two rounds for
map-reduce, retries of errored and expired requests, and a killed run that resumes by
polling instead of paying again."""

from __future__ import annotations

import functools
import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import anyio
import polars as pl
import pytest

from pipeline.config.endpoint import ApiKey, Endpoint
from pipeline.config.load import load_job
from pipeline.config.spec import Job
from pipeline.run.runner import RunControl, RunOutcome, run_job
from pipeline.simulator import Batches, SimulatorConfig, SimulatorServer
from tests.conftest import FakeClock, StartSimulator

ROOT = Path(__file__).resolve().parent.parent
MEMOS = 8


def make_docs(folder: Path, *, long: bool = True) -> Path:
    folder.mkdir()
    for n in range(MEMOS):
        (folder / f"memo-{n}.txt").write_text(
            f"Memo {n}: the board approved item {n * 3}.", encoding="utf-8"
        )
    if long:
        text = " ".join(f"Clause {n}: the lessee keeps the premises in repair." for n in range(900))
        (folder / "lease.txt").write_text(text, encoding="utf-8")  # map-reduce: two rounds
    return folder


def batch_job(docs: Path, out: Path, *extra: str) -> Job:
    overrides = [
        'endpoint.mode="batch"',
        "endpoint.batch_poll_s=0.02",
        "chunking.max_chunk_tokens=4000",
        *extra,
    ]
    return load_job(ROOT / "jobs/summarize.toml", inputs=[str(docs)], output=str(out),
                    overrides=overrides)  # fmt: skip


def run(job: Job, server: SimulatorServer) -> RunOutcome:
    endpoint = Endpoint(server.url, ApiKey(server.api_key), key_source="$TEST_KEY")
    outcome: RunOutcome = anyio.run(functools.partial(run_job, job, endpoint, RunControl()))
    return outcome


def test_a_batch_run_gives_one_row_per_document_at_half_price(
    start_simulator: StartSimulator, tmp_path: Path
) -> None:
    server = start_simulator(SimulatorConfig(batches=Batches(processing_seconds=0.0)))
    job = batch_job(make_docs(tmp_path / "docs"), tmp_path / "out.parquet")

    outcome = run(job, server)

    rows = pl.read_parquet(outcome.output)
    assert sorted(rows["source"]) == sorted(p.name for p in (tmp_path / "docs").iterdir())
    assert set(rows["status"]) == {"ok"}
    lease = rows.filter(pl.col("source") == "lease.txt").row(0, named=True)
    assert lease["chunks"] > 1
    stats = server.stats()
    assert stats["served"]["total"] == 0  # nothing through /v1/messages
    # The lease's parts, then the combining request made from their answers: two rounds.
    assert stats["batches"]["created"] >= 2
    assert stats["batches"]["results_by_type"] == {"succeeded": stats["batches"]["requests"]}
    price = job.price
    assert price is not None
    for row in rows.iter_rows(named=True):
        usage_cost = (
            row["input_tokens"] * price.input + row["output_tokens"] * price.output
        ) / 1_000_000
        assert row["cost_usd"] == pytest.approx(usage_cost / 2)
    assert outcome.report["cost_usd"] == pytest.approx(rows["cost_usd"].sum(), abs=1e-6)


def test_errored_and_expired_requests_are_sent_again(
    start_simulator: StartSimulator, tmp_path: Path
) -> None:
    faults = Batches(processing_seconds=0.0, errored=0.3, expired=0.2, seed=4)
    server = start_simulator(SimulatorConfig(batches=faults))
    job = batch_job(
        make_docs(tmp_path / "docs", long=False),
        tmp_path / "out.parquet",
        "endpoint.batch_max_attempts=8",
    )

    outcome = run(job, server)

    rows = pl.read_parquet(outcome.output)
    assert len(rows) == MEMOS
    assert set(rows["status"]) == {"ok"}
    by_type = server.stats()["batches"]["results_by_type"]
    assert by_type["succeeded"] == MEMOS  # each paid for once
    assert by_type.get("errored", 0) + by_type.get("expired", 0) > 0  # faults were drawn
    retried = outcome.report["calls"]["retries"]
    assert retried == by_type.get("errored", 0) + by_type.get("expired", 0)


def test_a_batch_run_killed_after_submitting_resumes_by_polling(
    tmp_path: Path, fake_clock: FakeClock
) -> None:
    config = SimulatorConfig(batches=Batches(processing_seconds=600.0))
    with SimulatorServer(config, clock=fake_clock) as server:
        docs, out = make_docs(tmp_path / "docs", long=False), tmp_path / "out.parquet"
        env = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY")}
        env["MEGALLM_API_KEY"] = server.api_key
        process = subprocess.Popen(
            [
                sys.executable, "-m", "pipeline", "run", "jobs/summarize.toml", str(docs),
                "--output", str(out), "--base-url", server.url, "--log-json",
                "--set", 'endpoint.mode="batch"', "--set", "endpoint.batch_poll_s=0.05",
                "--set", "chunking.max_chunk_tokens=4000",  # the same settings as below
            ],
            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        assert process.stderr is not None
        events: list[dict[str, Any]] = []
        while not any(e.get("event") == "batch_submitted" for e in events):
            line = process.stderr.readline()
            assert line, "the run ended before submitting a batch"
            events.append(json.loads(line))
        process.send_signal(signal.SIGKILL)  # the batch is on the server, unfinished
        process.communicate(timeout=30)
        assert server.stats()["batches"]["created"] == 1

        fake_clock.advance(601)  # the batch has ended on the server
        job = batch_job(docs, out)
        outcome = run(job, server)

        rows = pl.read_parquet(out)
        assert len(rows) == MEMOS
        assert set(rows["status"]) == {"ok"}
        stats = server.stats()["batches"]
        assert stats["created"] == 1  # polled the first run's batch, submitted nothing
        assert stats["requests"] == MEMOS
        assert outcome.report["documents"]["sent"] == MEMOS
