"""Kills and interrupts: the real command line as a subprocess against a simulator."""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from pipeline.simulator import Latency, SimulatorConfig
from pipeline.state.store import finished_keys
from tests.conftest import StartSimulator, wait_for_stats

ROOT = Path(__file__).resolve().parent.parent
SUMMARIZE = ROOT / "jobs" / "summarize.toml"
DOCUMENTS = 30
CONCURRENCY = 4  # summarize.toml's limits.max_concurrency: the calls a run holds at once


def make_docs(folder: Path, count: int = DOCUMENTS) -> Path:
    folder.mkdir()
    for n in range(count):
        (folder / f"memo-{n:02d}.txt").write_text(
            f"Memo {n}: the board discussed item {n * 7} and agreed to review it.",
            encoding="utf-8",
        )
    return folder


def start_run(
    url: str,
    key: str,
    docs: Path,
    out: Path,
    *options: str,
    job: Path = SUMMARIZE,
    key_variable: str = "MEGALLM_API_KEY",
) -> subprocess.Popen[str]:
    """``pipeline run JOB DOCS`` against ``url`` in a subprocess, once it has started; the key
    in ``key_variable`` (the job must name it if it is not one of the usual ones)."""
    env = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY")}
    env[key_variable] = key
    process = subprocess.Popen(
        [
            sys.executable, "-m", "pipeline", "run", str(job), str(docs),
            "--output", str(out), "--base-url", url, *options,
        ],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert process.stderr is not None
    # It has started (a cluster run says first how it joined the cluster).
    while not (line := process.stderr.readline()).startswith("pipeline: running"):
        assert line, "the run ended before it started"
    return process


def finish(process: subprocess.Popen[str], expected: int) -> None:
    _, errors = process.communicate(timeout=120)
    assert process.returncode == expected, errors[-4_000:]


def served_at_least(total: int) -> Callable[[dict[str, Any]], bool]:
    """A ``wait_for_stats`` condition: the simulator has served ``total`` replies."""
    return lambda stats: stats["served"]["total"] >= total


def test_kill_9_at_random_points_then_resume(
    start_simulator: StartSimulator, tmp_path: Path
) -> None:
    server = start_simulator(SimulatorConfig(latency=Latency(fixed=0.2)))
    docs, out = make_docs(tmp_path / "docs"), tmp_path / "out.parquet"
    rng = random.Random(7)
    state = out.with_name("out.state.sqlite")
    unsaved_at_kills = []
    for _ in range(3):
        committed = len(finished_keys(state))
        # A random point in the run: after 5 to 9 more replies (more than the 4 in flight).
        target = server.stats()["served"]["total"] + rng.randint(5, 9)
        process = start_run(server.url, server.api_key, docs, out)
        wait_for_stats(server, served_at_least(target), process=process)
        assert process.poll() is None, "the run ended before the kill: the test proved nothing"
        process.send_signal(signal.SIGKILL)
        process.communicate(timeout=120)
        # What finished before the kill was committed as it finished: it is in the state.
        assert len(finished_keys(state)) > committed, "a kill -9 lost every finished document"
        # Paid for and not saved: only the calls the run had in flight (a reply on its way
        # back, or one received and not yet committed), at most the job's concurrency.
        stats = wait_for_stats(server, lambda stats: stats["in_flight"] == 0)
        unsaved = len(stats["served"]["by_request"]) - len(finished_keys(state))
        assert 0 <= unsaved <= CONCURRENCY, unsaved
        unsaved_at_kills.append(unsaved)
    finish(start_run(server.url, server.api_key, docs, out), 0)
    rows = pl.read_parquet(out)
    assert len(rows) == DOCUMENTS
    assert rows["source"].n_unique() == DOCUMENTS
    assert set(rows["status"]) == {"ok"}
    served = server.stats()["served"]["by_request"]
    repeats = sum(count - 1 for count in served.values())
    # Only calls in flight at a kill may have been answered twice.
    assert repeats <= sum(unsaved_at_kills), (repeats, unsaved_at_kills)


def test_sigterm_saves_what_finished_and_exits_130(
    start_simulator: StartSimulator, tmp_path: Path
) -> None:
    server = start_simulator(SimulatorConfig(latency=Latency(fixed=0.2)))
    docs, out = make_docs(tmp_path / "docs"), tmp_path / "out.parquet"
    process = start_run(server.url, server.api_key, docs, out)
    wait_for_stats(server, served_at_least(6), process=process)  # mid-run: 6 of 30 answered
    process.send_signal(signal.SIGTERM)
    finish(process, 130)
    saved = pl.read_parquet(out)
    assert set(saved["status"]) == {"ok"}
    before = server.stats()["served"]["total"]
    # Every reply paid for before the run stopped is kept; the rest were never sent.
    assert 6 <= len(saved) == before < DOCUMENTS
    finish(start_run(server.url, server.api_key, docs, out), 0)
    rows = pl.read_parquet(out)
    assert len(rows) == DOCUMENTS
    # The resumed run sent only what the interrupted one had not finished.
    assert server.stats()["served"]["total"] - before == DOCUMENTS - len(saved)
    assert server.stats()["served"]["max_per_request"] == 1
    texts = dict(zip(saved["source"], saved["text"], strict=True))
    for source, text in zip(rows["source"], rows["text"], strict=True):
        if source in texts:
            assert text == texts[source]


@pytest.mark.parametrize("signals", [1, 2])
def test_interrupt_never_leaves_a_half_written_output(
    start_simulator: StartSimulator, tmp_path: Path, signals: int
) -> None:
    server = start_simulator(SimulatorConfig(latency=Latency(fixed=0.2)))
    docs, out = make_docs(tmp_path / "docs"), tmp_path / "out.parquet"
    state = out.with_name("out.state.sqlite")
    process = start_run(server.url, server.api_key, docs, out)
    # Mid-run: documents are committed, others are in flight.
    wait_for_stats(server, lambda _: len(finished_keys(state)) >= 4, process=process)
    committed = len(finished_keys(state))
    for _ in range(signals):
        process.send_signal(signal.SIGINT)
    finish(process, 130)
    saved = pl.read_parquet(out)  # readable, and holds at least what was committed
    assert committed <= len(saved) < DOCUMENTS
    assert set(saved["status"]) == {"ok"}
    assert not list(tmp_path.glob(".*.partial"))


def stored_calls(state: Path) -> int:
    """How many finished calls of unfinished documents the state holds (its ``calls``
    table), read as ``pipeline plan`` reads it: without the run's lock."""
    try:
        db = sqlite3.connect(f"file:{state}?mode=ro", uri=True)
        try:
            return int(db.execute("select count(*) from calls").fetchone()[0])
        finally:
            db.close()
    except sqlite3.Error:  # not made yet
        return 0


@pytest.mark.parametrize("stop", [signal.SIGKILL, signal.SIGTERM])
def test_a_killed_map_reduce_document_resumes_paying_only_for_its_unfinished_parts(
    start_simulator: StartSimulator, tmp_path: Path, stop: signal.Signals
) -> None:
    server = start_simulator(SimulatorConfig(latency=Latency(fixed=0.3)))
    docs, out = tmp_path / "docs", tmp_path / "out.parquet"
    docs.mkdir()
    paragraph = "The board reviewed the budget, the staffing plan and the supplier contracts. "
    (docs / "long.txt").write_text(paragraph * 1_800, encoding="utf-8")  # about 12 parts
    options = ("--set", "chunking.max_chunk_tokens=1500", "--set", "limits.max_concurrency=2")
    state = out.with_name("out.state.sqlite")
    process = start_run(server.url, server.api_key, docs, out, *options)
    # Mid-document: some parts are stored as finished, others are not.
    wait_for_stats(server, lambda _: stored_calls(state) >= 4, process=process)
    assert process.poll() is None, "the run ended before the kill: the test proved nothing"
    process.send_signal(stop)
    process.communicate(timeout=120)
    finished = stored_calls(state)  # what the stopped run committed
    served_before = server.stats()["served"]["total"]
    assert not out.exists() or pl.read_parquet(out).is_empty()  # the document did not finish

    finish(start_run(server.url, server.api_key, docs, out, *options), 0)
    [row] = pl.read_parquet(out).iter_rows(named=True)
    assert row["status"] == "ok"
    calls = pl.read_parquet(out.with_name("out.calls.parquet"))
    maps = calls.filter(pl.col("call").str.starts_with("map/"))["call"].unique()
    combining = calls.filter(~pl.col("call").str.starts_with("map/"))["call"].unique()
    assert len(maps) == row["chunks"] >= 10  # a many-part document, every part accounted
    assert 4 <= finished < len(maps)
    # The resumed run sent the parts that had not finished and the combining calls: no more.
    sent = server.stats()["served"]["total"] - served_before
    assert sent == len(maps) - finished + len(combining)
    assert stored_calls(state) == 0  # the row is the durable record now
