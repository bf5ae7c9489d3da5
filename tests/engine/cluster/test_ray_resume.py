"""A cluster run's driver killed (``kill -9``) mid-run, then run again: one row per document, and
the second run pays only for what the first had not finished."""

from __future__ import annotations

import signal
import subprocess
from pathlib import Path

import polars as pl
import pytest

ray = pytest.importorskip("ray")

from pipeline.engine.cluster.limiter import stop_limiter  # noqa: E402
from pipeline.simulator import Latency, SimulatorConfig  # noqa: E402
from pipeline.state.store import finished_keys  # noqa: E402
from tests.conftest import StartSimulator, wait_for_stats  # noqa: E402
from tests.engine.cluster.callers import KEY_VARIABLE  # noqa: E402
from tests.engine.cluster.conftest import TEST_KEY, TIER, RunningCluster  # noqa: E402
from tests.test_interrupts import DOCUMENTS, finish, make_docs, start_run  # noqa: E402

pytestmark = pytest.mark.timeout(240)

# The callers each hold at most this many of the driver's calls (summarize.toml's concurrency).
CALLER_CONCURRENCY = 4


def test_a_killed_cluster_driver_resumes_paying_only_for_unfinished_work(
    cluster: RunningCluster, start_simulator: StartSimulator, tmp_path: Path
) -> None:
    server = start_simulator(
        SimulatorConfig(api_keys=frozenset({TEST_KEY}), limits=TIER, latency=Latency(fixed=0.2))
    )
    docs, out = make_docs(tmp_path / "docs"), tmp_path / "out.parquet"
    state = out.with_name("out.state.sqlite")
    options = (
        "--executor", "ray", "--address", cluster.cluster.address,
        "--set", f"endpoint.api_key_env={KEY_VARIABLE}",
    )  # fmt: skip

    def run() -> subprocess.Popen[str]:
        return start_run(server.url, TEST_KEY, docs, out, *options, key_variable=KEY_VARIABLE)

    try:
        process = run()
        # Mid-run: documents are committed, others are in flight.
        wait_for_stats(server, lambda _: len(finished_keys(state)) >= 6, process=process)
        assert process.poll() is None, "the run ended before the kill: the test proved nothing"
        process.send_signal(signal.SIGKILL)
        process.communicate(timeout=120)
        # The dead driver's callers send nothing more without the limiter (as after a `ray
        # stop`); what they had sent ends.
        stop_limiter("127.0.0.1")
        wait_for_stats(server, lambda stats: stats["in_flight"] == 0)
        finished, paid = len(finished_keys(state)), server.stats()["served"]["total"]
        assert 6 <= finished < DOCUMENTS
        finish(run(), 0)
    finally:
        stop_limiter("127.0.0.1")
    rows = pl.read_parquet(out)
    assert len(rows) == DOCUMENTS
    assert rows["source"].n_unique() == DOCUMENTS
    assert set(rows["status"]) == {"ok"}
    stats = server.stats()["served"]
    # The second run paid once for each document the first had not finished, no more.
    assert stats["total"] - paid == DOCUMENTS - finished
    # Paid twice: only calls the killed driver had handed to a caller (each caller holds
    # at most its concurrency), never a finished document's.
    repeats = sum(count - 1 for count in stats["by_request"].values())
    assert repeats <= CALLER_CONCURRENCY * (1 + len(cluster.workers))
