"""Reading on the cluster (``--executor ray``): files read, PDFs' text extracted and first rounds
planned in Ray tasks on the nodes, with the rows a local run writes (a broken PDF included)."""

from __future__ import annotations

import logging
import os
import pickle
import shutil
from pathlib import Path

import polars as pl
import pytest

ray = pytest.importorskip("ray")

import pipeline  # noqa: E402
from pipeline.engine.cluster.limiter import stop_limiter  # noqa: E402
from pipeline.simulator import SimulatorConfig  # noqa: E402
from tests.conftest import TEST_MODELS, StartSimulator  # noqa: E402
from tests.engine.cluster.callers import KEY_VARIABLE  # noqa: E402
from tests.engine.cluster.conftest import ROOT, TEST_KEY, TIER, RunningCluster  # noqa: E402

pytestmark = pytest.mark.timeout(240)

LIMITS = {"limits.requests_per_minute": 600, "limits.tokens_per_minute": 150_000}
SAMPLE = ROOT / "sample_data" / "docs"


def make_docs(folder: Path) -> Path:
    """PDFs (a broken and an encrypted one among them) and text files, one a chunk too many."""
    folder.mkdir()
    for pdf in sorted(SAMPLE.glob("*.pdf")):
        shutil.copy(pdf, folder / pdf.name)
    for n in range(12):
        (folder / f"note-{n:02d}.txt").write_text(f"Note {n}: the board met. " * (n + 1))
    (folder / "long.md").write_text("The committee read the report. " * 1_000)
    return folder


def test_reading_on_the_cluster_gives_a_local_runs_rows_read_on_the_nodes(
    cluster: RunningCluster,
    start_simulator: StartSimulator,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    server = start_simulator(
        SimulatorConfig(models=TEST_MODELS, api_keys=frozenset({TEST_KEY}), limits=TIER)
    )
    docs = make_docs(tmp_path / "docs")

    def run(output: str, **options: str) -> pl.DataFrame:
        job = pipeline.load_job(
            ROOT / "jobs" / "summarize.toml",
            overrides={
                **LIMITS,
                "endpoint.api_key_env": KEY_VARIABLE,
                "chunking.max_chunk_tokens": 1500,
            },
            inputs=[str(docs)],
            output=str(tmp_path / output),
            base_url=server.url,
        )
        outcome = pipeline.run_job(job, **options)  # type: ignore[arg-type]
        assert outcome.ended == "completed"
        return pl.read_parquet(outcome.output).sort("source")

    caplog.set_level(logging.INFO, logger="pipeline.cluster")
    try:
        on_cluster = run("cluster.parquet", executor="ray", address=cluster.cluster.address)
    finally:
        stop_limiter("127.0.0.1")
    local = run("local.parquet")
    columns = ["source", "status", "text", "error_type", "chunks", "input_tokens"]
    assert on_cluster.select(columns).equals(local.select(columns))
    assert len(on_cluster) == len(list(docs.iterdir()))
    broken = on_cluster.filter(pl.col("source") == "broken.pdf")
    assert broken["status"].to_list() == ["error"]
    assert on_cluster.filter(pl.col("source") == "long.md")["chunks"].to_list()[0] > 1
    # Where the files were read: in Ray's worker processes, spread over the nodes.
    reads = [r for r in caplog.records if getattr(r, "event", None) == "cluster_reads"]
    assert len(reads) == 1
    nodes: dict[str, int] = reads[0].nodes  # type: ignore[attr-defined]
    assert sum(nodes.values()) == len(on_cluster)
    assert set(cluster.workers) <= set(nodes)  # both worker nodes read some
    assert os.getpid() not in reads[0].pids  # type: ignore[attr-defined]


def test_a_task_plans_the_first_round_and_names_a_folder_its_node_cannot_see(
    cluster: RunningCluster, tmp_path: Path
) -> None:
    from pipeline.engine.cluster.reading import read_batch
    from pipeline.readers import Candidate
    from pipeline.readers.job import input_options
    from pipeline.shaping.planner import Planned, first_round

    docs = make_docs(tmp_path / "docs")
    job = pipeline.load_job(
        ROOT / "jobs" / "summarize.toml",
        overrides={"endpoint.api_key_env": KEY_VARIABLE},
        inputs=[str(docs)],
    )
    options = input_options(job)
    # What the reading puts in Ray's object store holds no key (it is in this environment).
    assert os.environ[KEY_VARIABLE] == TEST_KEY
    assert TEST_KEY.encode() not in pickle.dumps((job, options))
    long, gone = docs / "long.md", tmp_path / "elsewhere" / "note.txt"
    candidates = [Candidate(long, "long.md"), Candidate(gone, "note.txt")]
    node, _, items = read_batch(candidates, options, job, 4_000)
    planned, (source, problem) = items
    assert isinstance(planned, Planned)
    assert planned.first == first_round(job, 4_000, planned.document)
    assert len(planned.first.units) > 1
    assert source == "note.txt"
    assert problem.kind == "unreadable"
    assert f"is not on the cluster's node {node}" in str(problem)
