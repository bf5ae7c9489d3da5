"""Kills: the real command line as a subprocess, stopped by SIGKILL or SIGTERM at seeded
random points, and resumed after each.

Each signal lands at a point of the run counted on the simulator (its start, or a number of
replies served), never after a guessed sleep. After every round whatever output exists
reads (the Parquet files with polars and pyarrow, the report as JSON): never half a file.
SIGTERM loses nothing it paid for: every reply served in the round is in the output written
at exit. SIGKILL loses no committed document: the state grew in every round it landed in.
At the end: exactly one row per document, and no more documents answered twice than the
simulator had requests in flight at the SIGKILLs.
"""

from __future__ import annotations

import json
import random
import signal
from collections import Counter
from pathlib import Path

import polars as pl
import pyarrow.parquet as pq

from pipeline.config.paths import report_path
from pipeline.simulator import Latency, SimulatorConfig, SimulatorServer
from pipeline.state.store import finished_keys
from tests.conftest import StartSimulator, wait_for_stats
from tests.test_interrupts import finish, make_docs, served_at_least, start_run

DOCUMENTS = 100
ROUNDS = 8


def read_outputs(out: Path) -> set[str]:
    """Read every output file that exists, as a user would; return the answers' digests."""
    texts: set[str] = set()
    if out.exists():
        rows = pl.read_parquet(out)
        assert pq.read_table(out).num_rows == len(rows)
        assert rows["source"].n_unique() == len(rows)
        assert set(rows["status"]) <= {"ok"}
        texts = {text.split()[1] for text in rows["text"]}
    calls = out.with_name(f"{out.stem}.calls.parquet")
    if calls.exists():
        assert pq.read_table(calls).num_rows == len(pl.read_parquet(calls))
    report = report_path(out)
    if report.exists():
        summary = json.loads(report.read_text(encoding="utf-8"))
        assert summary["ended"] in ("completed", "interrupted")
    return texts


def served(server: SimulatorServer) -> Counter[str]:
    return Counter(server.stats()["served"]["by_request"])


def test_sigkill_and_sigterm_at_random_points_then_resume(
    start_simulator: StartSimulator, tmp_path: Path
) -> None:
    server = start_simulator(SimulatorConfig(latency=Latency(fixed=0.2)))
    docs, out = make_docs(tmp_path / "docs", DOCUMENTS), tmp_path / "out.parquet"
    state = out.with_name("out.state.sqlite")
    rng = random.Random(20260301)
    landed: Counter[str] = Counter()
    in_flight_at_kills = 0
    for _ in range(ROUNDS):
        sent = rng.choice([signal.SIGKILL, signal.SIGTERM])
        # A random point in the run: at its start, or after 5 to 10 more replies (more than
        # the calls in flight, so a kill that loses finished work loses more than it may).
        more = rng.choice([0, rng.randint(5, 10), rng.randint(5, 10)])
        before, committed = served(server), len(finished_keys(state))
        process = start_run(server.url, server.api_key, docs, out)
        target = before.total() + more
        stats = wait_for_stats(server, served_at_least(target), process=process)
        if process.poll() is None:
            process.send_signal(sent)
            landed[sent.name] += 1
            if sent == signal.SIGKILL:
                in_flight_at_kills += stats["in_flight"]
        _, errors = process.communicate(timeout=60)
        answers = read_outputs(out)
        assert "Traceback" not in errors, errors[-4_000:]
        if process.returncode == 130:  # SIGTERM: what was paid for in this round is kept
            new = served(server) - before
            assert {digest[:12] for digest in new} <= answers
        elif process.returncode == -signal.SIGKILL and more:
            # Finished documents were committed as they finished, not at the end.
            assert len(finished_keys(state)) > committed, "kill -9 lost every finished one"
        elif process.returncode == -signal.SIGTERM:
            # Only after the run: its handler is gone once the results are written.
            assert json.loads(report_path(out).read_text())["ended"] == "completed"
        else:
            assert process.returncode in (0, -signal.SIGKILL), errors[-4_000:]
    assert landed["SIGKILL"] >= 2, landed
    assert landed["SIGTERM"] >= 2, landed

    finish(start_run(server.url, server.api_key, docs, out), 0)
    rows = pl.read_parquet(out)
    assert sorted(rows["source"]) == sorted(p.name for p in docs.iterdir())
    assert set(rows["status"]) == {"ok"}
    counts = served(server)
    assert len(counts) == DOCUMENTS
    repeats = sum(n - 1 for n in counts.values())
    # Answered twice: at most the requests the simulator had in flight at each SIGKILL.
    assert repeats <= in_flight_at_kills, (repeats, in_flight_at_kills, landed)
    # Every answer in the output is the one the server produced for that document.
    assert {text.split()[1] for text in rows["text"]} == {d[:12] for d in counts}
    assert not list(tmp_path.glob(".*.partial")), "a temporary file was left behind"


def test_what_a_run_killed_while_writing_left_is_replaced_by_the_next_run(
    simulator: SimulatorServer, tmp_path: Path
) -> None:
    """SIGKILL during the final writes leaves ``.NAME.XXXXXXXX.partial`` files (half a Parquet
    file, half a report) beside an intact old output (``.NAME.partial`` from older versions):
    the next run removes them, so nothing is left and nothing half-written is ever read."""
    docs, out = make_docs(tmp_path / "docs", 3), tmp_path / "out.parquet"
    left = [
        tmp_path / ".out.parquet.k1ll3d1x.partial",
        tmp_path / ".out.calls.parquet.partial",
        tmp_path / ".out.report.json.partial",
    ]
    for path in left:
        path.write_bytes(b"PAR1 half a file")
    finish(start_run(simulator.url, simulator.api_key, docs, out), 0)
    assert not any(path.exists() for path in left)
    assert len(pl.read_parquet(out)) == 3
    assert read_outputs(out) == {text.split()[1] for text in pl.read_parquet(out)["text"]}
