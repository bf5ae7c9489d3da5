"""A whole job with ``executor="ray"`` (``--executor ray``) on the local cluster: the same rows as
the same job run on this machine, within the tier; and the front doors' checks."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

ray = pytest.importorskip("ray")

import pipeline  # noqa: E402
from pipeline.cli import main  # noqa: E402
from pipeline.core.errors import ConfigError  # noqa: E402
from pipeline.engine.cluster.limiter import stop_limiter  # noqa: E402
from pipeline.simulator import Latency, SimulatorConfig  # noqa: E402
from tests.conftest import TEST_MODELS, StartSimulator  # noqa: E402
from tests.engine.cluster.callers import KEY_VARIABLE  # noqa: E402
from tests.engine.cluster.conftest import ROOT, TEST_KEY, TIER, RunningCluster  # noqa: E402

pytestmark = pytest.mark.timeout(240)

LIMITS = {"limits.requests_per_minute": 600, "limits.tokens_per_minute": 150_000}


def test_a_job_on_the_cluster_writes_the_rows_a_local_run_writes(
    cluster: RunningCluster, start_simulator: StartSimulator, tmp_path: Path
) -> None:
    server = start_simulator(
        SimulatorConfig(
            models=TEST_MODELS, api_keys=frozenset({TEST_KEY}), limits=TIER, latency=Latency(0.2)
        )
    )
    docs = tmp_path / "docs"
    docs.mkdir()
    for n in range(16):
        (docs / f"note-{n:02d}.txt").write_text(f"Note {n}: the board met. " * (n + 1))

    def run(output: str, **options: str) -> pl.DataFrame:
        job = pipeline.load_job(
            ROOT / "jobs" / "summarize.toml",
            overrides={**LIMITS, "endpoint.api_key_env": KEY_VARIABLE},
            inputs=[str(docs)],
            output=str(tmp_path / output),
            base_url=server.url,
        )
        outcome = pipeline.run_job(job, **options)  # type: ignore[arg-type]
        assert outcome.ended == "completed"
        return pl.read_parquet(outcome.output).sort("source")

    try:
        on_cluster = run("cluster.parquet", executor="ray", address=cluster.cluster.address)
    finally:
        limited = stop_limiter("127.0.0.1")  # named after the endpoint's host
    assert limited  # the cluster's limiter paced the run: it was not run here
    stats = server.stats()
    local = run("local.parquet")
    columns = ["source", "status", "text", "input_tokens", "output_tokens"]
    assert len(on_cluster) == 16
    assert on_cluster.select(columns).equals(local.select(columns))
    assert stats["rate_limited"] == {}
    assert stats["peaks"]["concurrency"] <= 4
    assert stats["served"]["max_per_request"] == 1


def test_the_front_doors_refuse_an_address_without_the_ray_executor(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code = main(["run", "jobs/summarize.toml", "--simulate", "--address", "127.0.0.1:1"])
    assert code == 2
    assert "--address is the Ray cluster's" in capsys.readouterr().err
    job = pipeline.load_job(ROOT / "jobs" / "summarize.toml")
    with pytest.raises(ConfigError, match="local or ray"):
        pipeline.run_job(job, simulate=True, executor="spark")  # type: ignore[arg-type]
