"""Follow-up questions in one conversation per document (``prompt.followups``), over HTTP
against the simulator: the history each turn sends, the cache it reads, a column per turn,
structured output on the last turn, batch mode, and a killed run resumed at the right turn."""

from __future__ import annotations

import functools
import json
import signal
from pathlib import Path
from typing import Any

import anyio
import httpx2 as httpx
import polars as pl

from pipeline.config.endpoint import ApiKey, Endpoint
from pipeline.config.load import load_job
from pipeline.config.spec import Job
from pipeline.run.plan import as_dict, make_plan, render
from pipeline.run.runner import RunControl, RunOutcome, run_job
from pipeline.simulator import Batches, Latency, SimulatorConfig, SimulatorServer
from tests.conftest import StartSimulator, wait_for_stats
from tests.test_interrupts import start_run, stored_calls

ROOT = Path(__file__).resolve().parent.parent
BRIEF = ROOT / "jobs" / "brief.toml"
CLAUSE = "The lessee keeps the premises in repair and pays the rent on the first of the month. "


class Recording(httpx.AsyncBaseTransport):
    """Real HTTP to the simulator; the body of every /v1/messages request kept."""

    def __init__(self) -> None:
        self.inner = httpx.AsyncHTTPTransport()
        self.bodies: list[dict[str, Any]] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.path == "/v1/messages":
            self.bodies.append(json.loads(request.content))
        return await self.inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self.inner.aclose()


def make_docs(folder: Path) -> Path:
    folder.mkdir()
    (folder / "lease.txt").write_text(CLAUSE * 150, encoding="utf-8")  # ~2,500 tokens
    (folder / "note.txt").write_text("Pay the rent on time.", encoding="utf-8")
    return folder


def brief_job(docs: Path, out: Path, *overrides: str) -> Job:
    return load_job(BRIEF, inputs=[str(docs)], output=str(out), overrides=list(overrides))


def run(job: Job, server: SimulatorServer, transport: Recording | None = None) -> RunOutcome:
    endpoint = Endpoint(server.url, ApiKey(server.api_key), key_source="$TEST_KEY")
    call = functools.partial(run_job, job, endpoint, RunControl(), transport=transport)
    outcome: RunOutcome = anyio.run(call)
    return outcome


def text_of(message: dict[str, Any]) -> str:
    content = message["content"]
    return content if isinstance(content, str) else "".join(b["text"] for b in content)


def marked(message: dict[str, Any]) -> bool:
    content = message["content"]
    return not isinstance(content, str) and "cache_control" in content[-1]


def test_three_turns_send_the_history_read_the_cache_and_fill_a_column_each(
    start_simulator: StartSimulator, tmp_path: Path
) -> None:
    server = start_simulator()
    recording = Recording()
    outcome = run(
        brief_job(make_docs(tmp_path / "docs"), tmp_path / "out.parquet"), server, recording
    )

    rows = {row["source"]: row for row in pl.read_parquet(outcome.output).iter_rows(named=True)}
    assert {row["status"] for row in rows.values()} == {"ok"}
    lease = rows["lease.txt"]
    turns = [body for body in recording.bodies if "lease.txt" in text_of(body["messages"][0])]
    assert [len(body["messages"]) for body in turns] == [1, 3, 5]
    first, second, third = turns
    # Each follow-up carries the conversation before it: the same opening, the answers given.
    assert first["messages"][0] == second["messages"][0] == third["messages"][0]
    assert [m["role"] for m in third["messages"]] == ["user", "assistant"] * 2 + ["user"]
    assert text_of(second["messages"][1]) == text_of(third["messages"][1]) == lease["summary"]
    assert second["messages"][2] == third["messages"][2]
    assert text_of(third["messages"][3]) == lease["risks"]
    assert text_of(third["messages"][4]).startswith("Draft three questions for the author of")
    assert lease["questions"] == lease["text"] != lease["risks"] != lease["summary"]
    # The end of the history is marked for caching; the document is above the minimum, so
    # the second and third turns read it from the cache (and the short note never marks).
    assert marked(first["messages"][0])
    assert marked(second["messages"][1])
    assert marked(third["messages"][3])
    assert not marked(third["messages"][1])
    assert server.stats()["cache"]["read_requests"] == 2
    assert lease["cache_read_input_tokens"] > 2 * 2_000
    note_calls = [body for body in recording.bodies if "note.txt" in text_of(body["messages"][0])]
    assert len(note_calls) == 3
    assert not any(marked(message) for body in note_calls for message in body["messages"])
    calls = pl.read_parquet(outcome.calls_output)
    assert sorted(calls.filter(pl.col("doc_id") == lease["doc_id"])["call"]) == [
        "turn/1",
        "turn/2",
        "whole",
    ]


SCHEMA = (
    'structured.schema={type="object", properties={question={type="string"}, '
    'urgent={type="boolean"}}, required=["question", "urgent"]}'
)


def test_structured_output_on_the_last_turn_in_batch_mode_one_round_per_turn(
    start_simulator: StartSimulator, tmp_path: Path
) -> None:
    server = start_simulator(SimulatorConfig(batches=Batches(processing_seconds=0.0)))
    recording = Recording()
    job = brief_job(
        make_docs(tmp_path / "docs"),
        tmp_path / "out.parquet",
        SCHEMA,
        'endpoint.mode="batch"',
        "endpoint.batch_poll_s=0.02",
    )
    outcome = run(job, server, recording)

    rows = pl.read_parquet(outcome.output)
    assert set(rows["status"]) == {"ok"}
    assert rows["summary"].str.starts_with("Reply ").all()
    assert rows["risks"].str.starts_with("Reply ").all()
    assert rows["question"].null_count() == 0  # the last turn's structured fields
    assert set(rows["urgent"]) <= {True, False}
    # One batch per turn (the two documents' turns go together), at batch prices.
    batches = server.stats()["batches"]
    assert batches["created"] == 3
    assert batches["requests"] == 6
    assert recording.bodies == []  # nothing went to /v1/messages
    calls = pl.read_parquet(outcome.calls_output)
    assert sorted(set(calls["call"])) == ["turn/1", "turn/2", "whole"]


def test_a_document_over_the_window_is_followed_up_after_its_combined_answer(
    start_simulator: StartSimulator, tmp_path: Path
) -> None:
    server = start_simulator()
    recording = Recording()
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "lease.txt").write_text(CLAUSE * 300, encoding="utf-8")
    job = brief_job(docs, tmp_path / "out.parquet", "chunking.max_chunk_tokens=2000")
    [row] = pl.read_parquet(run(job, server, recording).output).iter_rows(named=True)
    assert row["status"] == "ok"
    assert row["chunks"] >= 2
    followups = [body for body in recording.bodies if len(body["messages"]) > 1]
    assert len(followups) == 2
    opening = text_of(followups[0]["messages"][0])
    assert opening.startswith("Below are summaries of consecutive parts")  # the combining
    assert text_of(followups[0]["messages"][1]) == row["summary"]
    assert f"followed the combined answer of {row['chunks']} parts" in " ".join(row["notes"])


class LastTurnFails(Recording):
    """Every third turn gets a 500 before it reaches the simulator; the rest go through."""

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.path == "/v1/messages" and len(json.loads(request.content)["messages"]) == 5:
            error = {"type": "api_error", "message": "Internal server error"}
            return httpx.Response(500, json={"type": "error", "error": error})
        return await super().handle_async_request(request)


def test_a_failed_turn_keeps_the_answers_before_it_and_is_asked_again_alone(
    start_simulator: StartSimulator, tmp_path: Path
) -> None:
    server = start_simulator()
    docs = make_docs(tmp_path / "docs")
    job = brief_job(docs, tmp_path / "out.parquet", "retry.max_attempts=1")
    failed = run(job, server, LastTurnFails())
    rows = pl.read_parquet(failed.output)
    assert set(rows["status"]) == {"error"}
    assert rows["summary"].str.starts_with("Reply ").all()  # the answers before it are kept
    assert rows["risks"].str.starts_with("Reply ").all()
    assert rows["questions"].null_count() == 2
    served = server.stats()["served"]["total"]
    assert served == 4  # two turns of each document

    recording = Recording()
    rows = pl.read_parquet(run(job, server, recording).output)
    assert set(rows["status"]) == {"ok"}
    assert [len(body["messages"]) for body in recording.bodies] == [5, 5]  # the third turns
    assert server.stats()["served"]["total"] == served + 2


def test_a_killed_conversation_resumes_at_its_first_unanswered_turn(
    start_simulator: StartSimulator, tmp_path: Path
) -> None:
    server = start_simulator(SimulatorConfig(latency=Latency(fixed=0.3)))
    docs, out = tmp_path / "docs", tmp_path / "out.parquet"
    docs.mkdir()
    (docs / "lease.txt").write_text(CLAUSE * 150, encoding="utf-8")
    state = out.with_name("out.state.sqlite")
    process = start_run(server.url, server.api_key, docs, out, job=BRIEF)
    # The summary and the risks are answered and stored; the third turn is not.
    wait_for_stats(server, lambda _: stored_calls(state) >= 2, process=process)
    assert process.poll() is None, "the run ended before the kill: the test proved nothing"
    process.send_signal(signal.SIGKILL)
    process.communicate(timeout=60)
    assert stored_calls(state) == 2
    before = wait_for_stats(server, lambda stats: stats["in_flight"] == 0)["by_endpoint"]

    process = start_run(server.url, server.api_key, docs, out, job=BRIEF)
    _, errors = process.communicate(timeout=60)
    assert process.returncode == 0, errors[-4_000:]
    after = server.stats()["by_endpoint"]
    # Only the third turn was sent again: the first two came from the stored calls.
    assert after["messages"] - before["messages"] == 1
    [row] = pl.read_parquet(out).iter_rows(named=True)
    assert row["status"] == "ok"
    assert stored_calls(state) == 0
    # Each answer names the request it answers: the first two turns were paid for once.
    served = server.stats()["served"]["by_request"]
    digests = [row[column].split()[1] for column in ("summary", "risks", "questions")]
    times = [sum(n for d, n in served.items() if d.startswith(digest)) for digest in digests]
    assert times[:2] == [1, 1]
    assert times[2] in (1, 2)  # the kill may have come as its reply was being made


def test_plan_counts_the_followups_calls_and_cost(tmp_path: Path) -> None:
    docs = make_docs(tmp_path / "docs")
    job = brief_job(docs, tmp_path / "out.parquet")
    alone = brief_job(docs, tmp_path / "alone.parquet", "prompt.followups=[]")
    plan, without = make_plan(job), make_plan(alone)
    assert plan.requests == without.requests == 2
    assert plan.followups == 4
    assert plan.all_requests == 6
    assert plan.longest_sequence == 3
    assert without.longest_sequence == 1
    assert job.price is not None
    usage = plan.usage_max()
    # The lease's history is long enough to be cached: its follow-ups re-read it.
    assert usage.cache_read_input_tokens > 2_000
    assert job.price.cost(usage) > job.price.cost(without.usage_max())
    text = render(plan, job.price, job.limits)
    assert "+ 4 follow-up questions (prompt.followups)" in text
    assert "of conversation for the follow-ups" in text
    assert as_dict(plan, job.price, job.limits)["followup_requests"] == 4
