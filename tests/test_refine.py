"""The refine strategy over HTTP against the simulator: an ordered document's parts asked in
order, each request carrying the answer so far; a killed run resumed mid-way."""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Any

import polars as pl

from pipeline.config.load import load_job
from pipeline.run.plan import make_plan
from pipeline.simulator import Latency, SimulatorConfig
from pipeline.simulator.replies import request_digest
from tests.conftest import StartSimulator, wait_for_stats
from tests.test_conversation import Recording, run, text_of
from tests.test_interrupts import start_run, stored_calls

ROOT = Path(__file__).resolve().parent.parent
SUMMARIZE = ROOT / "jobs" / "summarize.toml"
REFINE = ['chunking.strategy="refine"', "chunking.max_chunk_tokens=1000"]
SET_REFINE = [option for override in REFINE for option in ("--set", override)]


def transcript(folder: Path) -> Path:
    """A transcript whose later parts only make sense after the earlier ones."""
    folder.mkdir()
    lines = [
        f"Minute {n}: the witness goes on about the ledger entry of minute {max(n - 1, 0)}."
        for n in range(400)
    ]
    (folder / "hearing.txt").write_text("\n".join(lines), encoding="utf-8")
    return folder


def reply_to(body: dict[str, Any]) -> str:
    """How the simulator's answer to ``body`` starts."""
    return f"Reply {request_digest(body)[:12]} to:"


def test_each_part_carries_the_answer_so_far(
    start_simulator: StartSimulator, tmp_path: Path
) -> None:
    server = start_simulator()
    recording = Recording()
    job = load_job(
        SUMMARIZE,
        inputs=[str(transcript(tmp_path / "docs"))],
        output=str(tmp_path / "out.parquet"),
        overrides=REFINE,
    )
    plan = make_plan(job)  # before the run: after it, the document is finished
    outcome = run(job, server, recording)

    [row] = pl.read_parquet(outcome.output).iter_rows(named=True)
    assert row["status"] == "ok"
    bodies = recording.bodies
    assert len(bodies) == row["chunks"] >= 4  # one request a part, no combining
    prompts = [text_of(body["messages"][0]) for body in bodies]
    assert "<answer_so_far>" not in prompts[0]
    assert "Minute 0:" in prompts[0]
    for n in range(1, len(bodies)):  # in order, each with the answer to the one before
        assert f"<answer_so_far>\n{reply_to(bodies[n - 1])}" in prompts[n]
        assert f"part {n + 1} of {len(bodies)}" in prompts[n]
        assert "Summarize the document below" in prompts[n]  # the job's own request
    assert row["text"].startswith(reply_to(bodies[-1]))
    calls = pl.read_parquet(outcome.calls_output)
    assert list(calls["call"]) == [f"refine/{n}" for n in range(len(bodies))]
    # plan: the same requests, one after another, each later one carrying up to max_tokens
    assert plan.requests == len(bodies)
    assert plan.combining == 0
    assert plan.longest_sequence == len(bodies)
    assert plan.refine_carried_max >= (len(bodies) - 1) * job.spec.model.max_tokens


def test_a_killed_refine_run_resumes_at_the_first_unanswered_part(
    start_simulator: StartSimulator, tmp_path: Path
) -> None:
    server = start_simulator(SimulatorConfig(latency=Latency(fixed=0.2)))
    docs, out = transcript(tmp_path / "docs"), tmp_path / "out.parquet"
    state = out.with_name("out.state.sqlite")
    process = start_run(server.url, server.api_key, docs, out, *SET_REFINE)
    wait_for_stats(server, lambda _: stored_calls(state) >= 2, process=process)
    assert process.poll() is None, "the run ended before the kill: the test proved nothing"
    process.send_signal(signal.SIGKILL)
    process.communicate(timeout=60)
    finished = stored_calls(state)
    before = wait_for_stats(server, lambda stats: stats["in_flight"] == 0)["by_endpoint"]

    process = start_run(server.url, server.api_key, docs, out, *SET_REFINE)
    _, errors = process.communicate(timeout=60)
    assert process.returncode == 0, errors[-4_000:]
    [row] = pl.read_parquet(out).iter_rows(named=True)
    assert row["status"] == "ok"
    assert 2 <= finished < row["chunks"]
    sent = server.stats()["by_endpoint"]["messages"] - before["messages"]
    assert sent == row["chunks"] - finished  # only the parts not answered before the kill
    assert server.stats()["served"]["max_per_request"] <= 2
    assert stored_calls(state) == 0
